"""The HTML report: self-contained, escaped, and rendered by a real browser without errors."""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from imgclf import datasets, experiments
from imgclf.report import Report, experiment_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Appended to a copy of the report: records script errors and checks every image decoded.
PROBE = """
<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e)));
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = `images=${imgs.length} broken=${broken} errors=${window.__errors.length}`;
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    splits = datasets.load("digits")
    runs = experiments.run_demo(splits)
    path = tmp_path_factory.mktemp("report") / "report.html"
    experiment_report("demo <digits>", splits, runs, {"load": 0.1}).write(path)
    return path


def test_report_is_self_contained(demo_report):
    html = demo_report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched
    images = re.findall(r'src="data:image/png;base64,', html)
    assert len(images) >= 8  # samples, 2 curves, 2 confusions, neighbours, templates, loss
    for section in (
        "Dataset",
        "hyperparameter search",
        "final test (evaluated once)",
        "top-5 accuracy",
        "Run time",
        "nearest training images",
        "template",
    ):
        assert section in html, section


def test_text_is_escaped():
    html = Report("<script>alert(1)</script>").text("a & <b>").render()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "a &amp; &lt;b&gt;" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_report_renders_in_headless_chromium(demo_report):
    probe_page = demo_report.with_name("probe.html")
    probe_page.write_text(demo_report.read_text().replace("</body>", PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                CHROMIUM,
                *BROWSER_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                probe_page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    match = re.search(r"images=(\d+) broken=(\d+) errors=(\d+)", dom)
    assert match, f"probe did not run; DOM starts {dom[:300]!r}"
    images, broken, errors = map(int, match.groups())
    assert images >= 8 and broken == 0 and errors == 0


def test_write_is_atomic_and_returns_path(tmp_path):
    path = Report("x").text("y").write(tmp_path / "r.html")
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in Path(tmp_path).iterdir()] == ["r.html"]
