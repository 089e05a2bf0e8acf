"""A short load test with ``wrk`` on 127.0.0.1 (2 s, 16 connections): no error, every answer 200.

Figures belong to ``benchmarks/bench_serve.py``; this only checks that the server
holds up under a real load generator and still answers correctly afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

WRK = shutil.which("wrk")
pytestmark = pytest.mark.skipif(WRK is None, reason="wrk not installed (make test installs it)")

SCRIPT = r"""
local bodies, index = {}, 0
init = function(args)
  for name in io.open(os.getenv("BODIES")):lines() do
    local f = io.open(name, "rb"); table.insert(bodies, f:read("*all")); f:close()
  end
end
request = function()
  index = index % #bodies + 1
  return wrk.format("POST", os.getenv("TARGET"), {["Content-Type"] = "image/png"}, bodies[index])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@pytest.mark.parametrize("model", ["digits-knn", "digits-linear"])
def test_wrk_load_without_errors(server, digits_files, saved_models, tmp_path, model):
    script = tmp_path / "load.lua"
    script.write_text(SCRIPT)
    bodies = tmp_path / "bodies.txt"
    bodies.write_text("\n".join(str(p) for p in digits_files["images"]) + "\n")
    env = {**os.environ, "BODIES": str(bodies), "TARGET": f"/v1/models/{model}/predict"}
    done = subprocess.run(
        [WRK, "-t2", "-c16", "-d2s", "--timeout", "10s", "-s", str(script),
         f"http://127.0.0.1:{server.port}"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["requests"] > 50 and result["non_2xx"] == 0 and result["socket_errors"] == 0
    from imgclf.predict import predict_file

    path = digits_files["images"][3]
    status, got = server.post(f"/v1/models/{model}/predict", path.read_bytes())
    assert status == 200 and got["top"] == predict_file(saved_models[model], path)["top"]
