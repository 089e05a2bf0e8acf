"""``imgclf serve`` under load: latency, throughput and memory, against a plain FastAPI endpoint.

Every server runs in a subprocess on 127.0.0.1 and is driven by ``wrk`` (Debian's
package; the script installs it when missing and it can, else a Python
keep-alive client stands in) with CIFAR-10 test images as 32x32 PNG bodies,
a different image each request. In the same run the same model is served by
what a user would write without imgclf: a FastAPI endpoint that decodes the
body with Pillow and calls the model's ``predict``.

Cases (issue 14's goals, on 2 cores):

- one keep-alive connection: linear p50 <= 0.5 ms and p99 <= 2 ms; k-NN on the
  50,000 CIFAR-10 training images p50 <= 1 ms (exact single-query cascade, and
  the IVF index); Open Inference Protocol JSON p50 <= 2 ms;
- 64 connections: requests per second >= 3x the FastAPI endpoint's, p99 reported
  (imgclf with one worker, and with two: linear batched, k-NN one query per worker);
- memory: a loaded k-NN model's resident size <= 1.3x its training images (measured over
  a process that already loaded and ran a small model of the same kind: numba's compiled
  kernels and the libraries are the process's, not the model's);
- and, for the README's choice of framework, a bare ASGI, a Starlette and a
  FastAPI endpoint that only read the body, at one connection.

Models are trained once on the shared CIFAR-10 folder and kept in
``$IMGCLF_CACHE/bench-serve`` (``--models DIR`` elsewhere).

    python benchmarks/bench_serve.py [--duration 5] [--connections 64] [--quick]

Writes ``benchmarks/results/serve.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _common import SHARED_CIFAR, environment, write_json

PYTHON = sys.executable
LABEL_ONLY = "predict?top=1&neighbors=0"  # what the plain endpoint answers: the label
GOALS = {
    "linear_p50_ms": 0.5,
    "linear_p99_ms": 2.0,
    "knn_p50_ms": 1.0,
    "oip_json_p50_ms": 2.0,
    "throughput_ratio": 3.0,
    "knn_memory_ratio": 1.3,
}

WRK_SCRIPT = r"""
local bodies, index = {}, 0
local path, kind = os.getenv("BENCH_PATH"), os.getenv("BENCH_TYPE")
init = function(args)
  local list = io.open(os.getenv("BENCH_BODIES"))
  for name in list:lines() do
    local f = io.open(name, "rb"); table.insert(bodies, f:read("*all")); f:close()
  end
  list:close()
end
request = function()
  index = index % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = kind}, bodies[index])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"requests\": %d, " ..
    "\"seconds\": %.3f, \"non_2xx\": %d, \"socket_errors\": %d}\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, summary.requests, summary.duration / 1e6,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""

FASTAPI_APP = '''
"""What a user would write without imgclf serve: FastAPI, Pillow, the model's predict."""
import io, os
import numpy as np
from fastapi import FastAPI, Request
from PIL import Image
from imgclf import io as model_io

models = {}
for item in os.environ["BENCH_MODELS"].split(","):
    name, path = item.split("=")
    models[name] = model_io.load(path)
app = FastAPI()


@app.post("/predict/{name}")
async def predict(name: str, request: Request):
    saved = models[name]
    image = Image.open(io.BytesIO(await request.body())).convert("RGB")
    label = saved.model.predict(np.asarray(image).reshape(1, -1))[0]
    return {"label": saved.class_names[int(label)]}
'''

HELLO_APPS = '''
"""Three endpoints that read the body and answer {}: bare ASGI, Starlette, FastAPI."""
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def bare(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _star(request):
    await request.body()
    return JSONResponse({})

starlette = Starlette(routes=[Route("/predict", _star, methods=["POST"])])
fastapi = FastAPI()


@fastapi.post("/predict")
async def _fast(request: Request):
    await request.body()
    return {}
'''


# --- set-up ------------------------------------------------------------------------------------


def models_folder(given: str | None) -> Path:
    if given:
        return Path(given)
    cache = (
        os.environ.get("IMGCLF_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imgclf"
    )
    return Path(cache) / "bench-serve"


def train_models(folder: Path, data: Path) -> dict[str, Path]:
    """linear, exact k-NN and IVF k-NN on all of CIFAR-10's training images (kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {
        "linear": ["--model", "linear"],
        "knn": ["--model", "knn", "--k", "10"],
        "ivf": ["--model", "knn", "--k", "10", "--algorithm", "ivf"],
    }
    paths = {}
    for name, args in wanted.items():
        path = folder / f"{name}.imgclf"
        if not path.exists():
            print(f"training {name} on {data} ...", flush=True)
            subprocess.run(
                [PYTHON, "-m", "imgclf", "--quiet", "train", str(data), *args, "-o", str(path)],
                check=True,
            )
        paths[name] = path
    return paths


def png_bodies(data: Path, folder: Path, n: int = 200) -> Path:
    """``n`` CIFAR-10 test images (across the classes) as PNG files; the list's path."""
    from PIL import Image

    files = sorted((data / "test").glob("*/*.jpg"))
    chosen = [files[i] for i in np.random.default_rng(0).choice(len(files), n, replace=False)]
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, source in enumerate(chosen):
        target = folder / f"{i}.png"
        Image.open(source).convert("RGB").save(target)
        names.append(str(target))
    listing = folder / "bodies.txt"
    listing.write_text("\n".join(names) + "\n")
    return listing


def oip_bodies(png_list: Path, folder: Path, n: int = 50) -> Path:
    """Open Inference Protocol JSON requests (one UINT8 image each); the list's path."""
    from PIL import Image

    names = []
    for i, name in enumerate(png_list.read_text().split()[:n]):
        pixels = np.asarray(Image.open(name).convert("RGB"))
        body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3],
                            "data": pixels.ravel().tolist()}],
                "outputs": [{"name": "label"}, {"name": "top_classes"}]}  # fmt: skip
        target = folder / f"oip{i}.json"
        target.write_text(json.dumps(body))
        names.append(str(target))
    listing = folder / "oip.txt"
    listing.write_text("\n".join(names) + "\n")
    return listing


def find_wrk() -> str | None:
    """``wrk``, installed with apt-get when missing and possible."""
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("installing wrk (apt-get) ...", flush=True)
        subprocess.run(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk",
            shell=True, capture_output=True, check=False,
        )  # fmt: skip
    return shutil.which("wrk")


# --- servers -----------------------------------------------------------------------------------


class Process:
    """A server subprocess on 127.0.0.1; ``port`` once it answers."""

    def __init__(self, argv: list[str], env: dict | None = None, port: int | None = None):
        self.argv, self.env, self.port = argv, env, port
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Process:
        self.proc = subprocess.Popen(
            self.argv, env={**os.environ, **(self.env or {})}, stderr=subprocess.PIPE, text=True
        )
        if self.port is None:  # imgclf serve --port 0 says where it listens
            for line in self.proc.stderr:
                if match := re.match(r"serving on http://127\.0\.0\.1:(\d+)/", line):
                    self.port = int(match.group(1))
                    break
            else:
                raise RuntimeError(f"server did not start: {self.argv}")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        deadline = time.monotonic() + 120
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"server did not answer: {self.argv}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        return False

    def rss_mb(self) -> float:
        """Resident size of the server and its children, MB."""
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids += [int(p) for p in children.read_text().split()]
        return sum(_rss_kb(pid) for pid in pids) / 1024

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def imgclf_server(models: dict[str, Path], *extra: str) -> Process:
    args = [f"{name}={path}" for name, path in models.items()]
    return Process([PYTHON, "-m", "imgclf", "serve", *args, "--port", "0", *extra])


def uvicorn_server(app: str, folder: Path, env: dict | None = None, workers: int = 1) -> Process:
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--workers", str(workers), "--app-dir", str(folder)]  # fmt: skip
    return Process(argv, env=env, port=port)


# --- load --------------------------------------------------------------------------------------


def load(wrk: str | None, port: int, path: str, bodies: Path, kind: str, connections: int,
         duration: float, script: Path) -> dict:  # fmt: skip
    """Drive ``POST path`` with the bodies listed in ``bodies``; latency and rate."""
    if wrk is None:
        return python_load(port, path, bodies, kind, connections, duration)
    threads = min(2, connections)
    env = {**os.environ, "BENCH_PATH": path, "BENCH_TYPE": kind, "BENCH_BODIES": str(bodies)}
    done = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["requests_per_s"] = result["requests"] / result["seconds"]
    result["connections"], result["client"] = connections, "wrk"
    return result


def prime(port: int, path: str, bodies: Path, kind: str, n: int = 3) -> None:
    """A few untimed requests first: lazy set-up (a JIT compile on a first request, which
    numba does again for read-only arrays, as the plain endpoint's are) is not measured."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for name in bodies.read_text().split()[:n]:
        conn.request("POST", path, body=Path(name).read_bytes(), headers={"Content-Type": kind})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: {response.status}")
    conn.close()


def python_load(port, path, bodies: Path, kind, connections, duration) -> dict:
    """The fallback client: keep-alive connections on threads."""
    data = [Path(name).read_bytes() for name in bodies.read_text().split()]
    times: list[float] = []
    errors = [0]
    end = time.monotonic() + duration

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i = offset
        while time.monotonic() < end:
            start = time.perf_counter()
            conn.request("POST", path, body=data[i % len(data)], headers={"Content-Type": kind})
            response = conn.getresponse()
            response.read()
            times.append(time.perf_counter() - start)
            errors[0] += response.status >= 300
            i += 1

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "requests": len(ms), "seconds": seconds,
            "requests_per_s": len(ms) / seconds, "non_2xx": errors[0], "socket_errors": 0,
            "connections": connections, "client": "python"}  # fmt: skip


# --- memory ------------------------------------------------------------------------------------

MEMORY_PROBE = """
import json, sys
from pathlib import Path
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
import imgclf.serve.app, imgclf.serve.server, uvicorn, numpy, sklearn, imgclf.neighbors
from imgclf.serve.server import build_app
# The process's fixed costs are not the model's: set up a small model of the same kind
# first (numba's compiled kernels, Pillow, the loader), then the big one as the server
# does (loaded, warmed up, its batching measured).
build_app([sys.argv[2]])
before = rss()
app = build_app([sys.argv[1]])
after = rss()
fit = next(iter(app.models.values())).estimator._fit_X
print(json.dumps({"rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
                  "model_mb": (after - before) / 2**20, "training_mb": fit.nbytes / 2**20}))
"""


def small_model(folder: Path, path: Path) -> Path:
    """A k-NN of the same settings on 5,000 random 32x32x3 images: enough rows for the
    cascade, so that loading it brings in every kernel the big one uses."""
    from imgclf import io

    saved = io.load(path)
    clf = saved.model
    images = np.random.default_rng(0).integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(5000) % len(clf.classes_)
    small = type(clf)(**clf.get_params()).fit(images, labels)
    target = folder / f"small-{path.name}"
    io.save(small, target, model_type=saved.model_type, image_shape=(32, 32, 3))
    return target


def memory(path: Path) -> dict:
    """The model's resident size over a process that already runs a small one like it."""
    small = small_model(path.parent, path)
    done = subprocess.run([PYTHON, "-c", MEMORY_PROBE, str(path), str(small)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(done.stdout)
    result["ratio"] = result["model_mb"] / result["training_mb"]
    return result


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load case")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--models", help="folder of the trained models (kept between runs)")
    parser.add_argument("--data", default=str(SHARED_CIFAR))
    parser.add_argument("--quick", action="store_true", help="2 s cases, no framework comparison")
    args = parser.parse_args()
    duration = 2.0 if args.quick else args.duration
    data = Path(args.data)
    wrk = find_wrk()
    print(f"load generator: {wrk or 'python keep-alive client (wrk not found)'}", flush=True)
    models = train_models(models_folder(args.models), data)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        result = run(args, duration, wrk, models, data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["environment"] = environment() | {"load_average_at_end": os.getloadavg()}
    print(f"wrote {write_json('serve.json', result)}")


def run(args, duration, wrk, models, data, work) -> dict:
    script = work / "bodies.lua"
    script.write_text(WRK_SCRIPT)
    pngs = png_bodies(data, work / "png")
    oip = oip_bodies(pngs, work)
    (work / "plain_fastapi.py").write_text(FASTAPI_APP)
    (work / "hello.py").write_text(HELLO_APPS)

    def drive(port, path, bodies=pngs, kind="image/png", connections=1) -> dict:
        prime(port, path, bodies, kind)
        return load(wrk, port, path, bodies, kind, connections, duration, script)

    result: dict = {"duration_s": duration, "goals": GOALS, "latency_1_connection": {},
                    "throughput": {}, "load_average_at_start": os.getloadavg()}  # fmt: skip
    lat, thr = result["latency_1_connection"], result["throughput"]
    many = args.connections

    if not args.quick:
        result["frameworks_1_connection"] = {}
        for app in ("bare", "starlette", "fastapi"):
            with uvicorn_server(f"hello:{app}", work) as server:
                one = drive(server.port, "/predict")
                result["frameworks_1_connection"][app] = one
                print(f"read-the-body endpoint, {app}: p50 {one['p50_ms']:.3f} ms", flush=True)

    with imgclf_server(models) as server:
        for name in ("linear", "knn", "ivf"):
            lat[name] = drive(server.port, f"/v1/models/{name}/predict")
            report(f"imgclf {name}, 1 connection", lat[name])
        for name in ("knn", "ivf"):  # the work of the plain endpoint's predict: one search
            lat[f"{name}_label_only"] = drive(server.port, f"/v1/models/{name}/{LABEL_ONLY}")
            report(f"imgclf {name} {LABEL_ONLY}, 1 connection", lat[f"{name}_label_only"])
        lat["oip_json_linear"] = drive(
            server.port, "/v2/models/linear/infer", oip, "application/json"
        )
        report("imgclf OIP JSON linear, 1 connection", lat["oip_json_linear"])
        thr["imgclf_linear_1_worker"] = drive(server.port, "/v1/models/linear/predict",
                                              connections=many)  # fmt: skip
        report(f"imgclf linear, {many} connections, 1 worker", thr["imgclf_linear_1_worker"])
        for name in ("knn", "ivf"):
            thr[f"imgclf_{name}_label_only_1_worker"] = drive(
                server.port, f"/v1/models/{name}/{LABEL_ONLY}", connections=many
            )
            report(f"imgclf {name} {LABEL_ONLY}, {many} connections, 1 worker",
                   thr[f"imgclf_{name}_label_only_1_worker"])  # fmt: skip
        result["server_rss_mb"] = server.rss_mb()

    linear_only = {"linear": models["linear"]}
    with imgclf_server(linear_only, "--workers", "2", "--batch-float-models") as server:
        thr["imgclf_linear_2_workers_batched"] = drive(
            server.port, "/v1/models/linear/predict", connections=many
        )
        report(f"imgclf linear, {many} connections, 2 workers, --batch-float-models",
               thr["imgclf_linear_2_workers_batched"])  # fmt: skip

    knn_only = {"knn": models["knn"], "ivf": models["ivf"]}
    with imgclf_server(knn_only, "--workers", "2") as server:
        for name in ("knn", "ivf"):
            thr[f"imgclf_{name}_label_only_2_workers"] = drive(
                server.port, f"/v1/models/{name}/{LABEL_ONLY}", connections=many
            )
            report(f"imgclf {name} {LABEL_ONLY}, {many} connections, 2 workers",
                   thr[f"imgclf_{name}_label_only_2_workers"])  # fmt: skip

    env = {"BENCH_MODELS": ",".join(f"{name}={models[name]}" for name in ("linear", "knn", "ivf"))}
    with uvicorn_server("plain_fastapi:app", work, env) as server:
        for name in ("linear", "knn", "ivf"):
            lat[f"plain_fastapi_{name}"] = drive(server.port, f"/predict/{name}")
            report(f"plain FastAPI {name}, 1 connection", lat[f"plain_fastapi_{name}"])
            thr[f"plain_fastapi_{name}"] = drive(server.port, f"/predict/{name}", connections=many)
            report(f"plain FastAPI {name}, {many} connections", thr[f"plain_fastapi_{name}"])

    result["memory_knn"] = memory(models["knn"])
    result["memory_ivf"] = memory(models["ivf"])
    print(f"memory: {json.dumps(result['memory_knn'])}", flush=True)
    result["ratios"] = ratios(result)
    result["checks"] = checks(result)
    for name, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'MISS'} {name}")
    return result


def report(what: str, r: dict) -> None:
    print(f"{what}: p50 {r['p50_ms']:.3f} ms, p90 {r['p90_ms']:.3f}, p99 {r['p99_ms']:.3f}, "
          f"{r['requests_per_s']:,.0f} req/s, non-2xx {r['non_2xx']}, "
          f"socket errors {r['socket_errors']}", flush=True)  # fmt: skip


def ratios(result: dict) -> dict:
    thr, lat = result["throughput"], result["latency_1_connection"]

    def rate(name: str) -> float:
        return thr[name]["requests_per_s"]

    return {
        "linear_1_worker_vs_fastapi": rate("imgclf_linear_1_worker") / rate("plain_fastapi_linear"),
        "linear_2_workers_batched_vs_fastapi": rate("imgclf_linear_2_workers_batched")
        / rate("plain_fastapi_linear"),
        "knn_label_only_1_worker_vs_fastapi": rate("imgclf_knn_label_only_1_worker")
        / rate("plain_fastapi_knn"),
        "knn_label_only_2_workers_vs_fastapi": rate("imgclf_knn_label_only_2_workers")
        / rate("plain_fastapi_knn"),
        # the same IVF model behind both (its batches: the inverted lists' batch search)
        "ivf_label_only_1_worker_vs_fastapi": rate("imgclf_ivf_label_only_1_worker")
        / rate("plain_fastapi_ivf"),
        "ivf_label_only_2_workers_vs_fastapi": rate("imgclf_ivf_label_only_2_workers")
        / rate("plain_fastapi_ivf"),
        "latency_p50_fastapi_over_imgclf_linear": lat["plain_fastapi_linear"]["p50_ms"]
        / lat["linear"]["p50_ms"],
    }


def checks(result: dict) -> dict:
    lat, ratio = result["latency_1_connection"], result["ratios"]
    best_knn = min(lat["knn"]["p50_ms"], lat["ivf"]["p50_ms"])
    best_label = min(lat["knn_label_only"]["p50_ms"], lat["ivf_label_only"]["p50_ms"])
    return {
        "linear p50 <= 0.5 ms": lat["linear"]["p50_ms"] <= GOALS["linear_p50_ms"],
        "linear p99 <= 2 ms": lat["linear"]["p99_ms"] <= GOALS["linear_p99_ms"],
        "k-NN (best of exact, ivf) p50 <= 1 ms": best_knn <= GOALS["knn_p50_ms"],
        "k-NN label only (best of exact, ivf) p50 <= 1 ms": best_label <= GOALS["knn_p50_ms"],
        "OIP JSON p50 <= 2 ms": lat["oip_json_linear"]["p50_ms"] <= GOALS["oip_json_p50_ms"],
        "linear throughput >= 3x plain FastAPI": max(
            ratio["linear_1_worker_vs_fastapi"],
            ratio["linear_2_workers_batched_vs_fastapi"],
        )
        >= GOALS["throughput_ratio"],
        "k-NN (best of exact, ivf) throughput >= 3x plain FastAPI": max(
            ratio[f"{name}_label_only_{workers}_vs_fastapi"]
            for name in ("knn", "ivf")
            for workers in ("1_worker", "2_workers")
        )
        >= GOALS["throughput_ratio"],
        "k-NN model RSS <= 1.3x training data": result["memory_knn"]["ratio"]
        <= GOALS["knn_memory_ratio"],
        "no errors under load": all(
            r["non_2xx"] == 0 and r["socket_errors"] == 0
            for group in (result["latency_1_connection"], result["throughput"])
            for r in group.values()
        ),
    }


if __name__ == "__main__":
    main()
