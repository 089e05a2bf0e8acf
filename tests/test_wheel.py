"""The wheel as a user installs it: built by ``python -m build``, installed into a fresh
virtual environment outside the source tree, and run from there.

The build works on a copy of the sources (it writes ``*.egg-info`` and ``build/``, and
the working tree is shared) and makes the wheel from the sdist, as ``python -m build``
does by default, so a file the sdist lacks is missing from the wheel too. The fresh
environment gets the wheel alone (``--no-deps``: no download); a ``.pth`` file lends it
this environment's site-packages for the dependencies as a plain path, which Python
appends to ``sys.path`` without running the ``.pth`` files inside it, so the editable
install of imgclf there stays off and only the wheel's copy can be imported.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import imgclf

pytest.importorskip("build")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "imgclf"
SOURCES = ["pyproject.toml", "README.md", "CHANGELOG.md", "MANIFEST.in"]
SOURCE_DIRS = ["src", "examples", "docs", "tests"]
JUNK = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info", ".ipynb_checkpoints")


def run(*argv, cwd: Path, env: dict | None = None, timeout: int = 300) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(map(str, argv))}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """``{"wheel": …, "sdist": …}`` built by ``python -m build`` from a copy of the sources."""
    copy = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        shutil.copy2(ROOT / name, copy / name)
    for name in SOURCE_DIRS:
        shutil.copytree(ROOT / name, copy / name, ignore=JUNK)
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: setuptools and build come from the dev extra, nothing is downloaded
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, copy, cwd=copy)
    found = {"wheel": list(out.glob("*.whl")), "sdist": list(out.glob("*.tar.gz"))}
    assert all(len(paths) == 1 for paths in found.values()), found
    return {kind: paths[0] for kind, paths in found.items()}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel; its ``bin/`` folder."""
    root = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", root, cwd=root)
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "install"]
    run(*pip, "--no-deps", "--no-index", "--disable-pip-version-check", dist["wheel"], cwd=root)
    site = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    lent = dict.fromkeys(sysconfig.get_path(kind) for kind in ("purelib", "platlib"))
    (site / "dev-dependencies.pth").write_text("".join(f"{path}\n" for path in lent))
    return root / "bin"


@pytest.fixture
def outside(tmp_path) -> tuple[Path, dict]:
    """A working folder outside the source tree and an environment without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["IMGCLF_PROGRESS"] = "0"
    assert not tmp_path.is_relative_to(ROOT)
    return tmp_path, env


def test_the_wheel_is_pure_python_and_holds_every_package_file(dist):
    wheel = zipfile.ZipFile(dist["wheel"])
    assert dist["wheel"].name == f"imgclf-{imgclf.__version__}-py3-none-any.whl"
    installed = {name for name in wheel.namelist() if name.startswith("imgclf/")}
    assert installed == _package_files(), "files of src/imgclf missing from (or extra in) the wheel"
    assert not [name for name in installed if name.endswith((".so", ".pyd", ".c"))]


def _package_files() -> set[str]:
    """Every file of ``src/imgclf`` a user's install needs: modules and data (the web page…)."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_metadata_is_complete(dist):
    wheel = zipfile.ZipFile(dist["wheel"])
    meta = email.message_from_string(
        wheel.read(f"imgclf-{imgclf.__version__}.dist-info/METADATA").decode("utf-8")
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["Name"] == "imgclf" and meta["Version"] == imgclf.__version__
    assert meta["Requires-Python"] == project["requires-python"]
    assert meta["License-Expression"] == project["license"]
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == (ROOT / "README.md").read_text().strip()
    assert len(meta.get_all("Classifier")) >= 5
    assert set(meta.get_all("Provides-Extra")) == set(project["optional-dependencies"])
    assert (
        "imgclf = imgclf.cli:main"
        in wheel.read(f"imgclf-{imgclf.__version__}.dist-info/entry_points.txt").decode()
    )


def test_twine_check_passes(dist):
    pytest.importorskip("twine")
    text = run(sys.executable, "-m", "twine", "check", "--strict", *dist.values(), cwd=ROOT)
    assert text.count("PASSED") == 2


def test_the_sdist_holds_the_changelog_notebook_and_tests(dist):
    import tarfile

    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"CHANGELOG.md", "examples/lecture2.ipynb", "tests/test_wheel.py", "README.md"} <= names
    assert not [name for name in names if "__pycache__" in name]


def test_the_installed_wheel_runs_outside_the_source_tree(venv, outside):
    cwd, env = outside
    version = run(venv / "imgclf", "--version", cwd=cwd, env=env)
    assert version.strip() == f"imgclf {imgclf.__version__}"

    facts = json.loads(run(venv / "python", "-c", CHECK, cwd=cwd, env=env))
    assert Path(facts["file"]).is_relative_to(venv.parent), "imgclf was not imported from the wheel"
    assert str(ROOT / "src") not in facts["path"]
    assert facts["version"] == imgclf.__version__ == facts["metadata_version"]
    assert facts["static"] == sorted(p.name for p in (PACKAGE / "serve" / "static").iterdir())
    assert facts["accuracy"] > 0.9

    text = run(venv / "imgclf", "demo", cwd=cwd, env=env)
    assert "imgclf demo: digits" in text
    assert (cwd / "report.html").stat().st_size > 10_000


# Run by the fresh environment's Python: where imgclf comes from, its version, the web page's
# files read through the installed package as `imgclf serve` reads them, and a k-NN fit.
CHECK = """
import json, sys
from importlib.metadata import version
import imgclf
from imgclf.neighbors import KNNClassifier
from imgclf.serve.app import _static_files

digits = imgclf.load("digits")
train, test = digits["train"], digits["test"]
accuracy = KNNClassifier(k=1).fit(train.images, train.labels).score(test.images, test.labels)
print(json.dumps({
    "file": imgclf.__file__, "path": sys.path, "version": imgclf.__version__,
    "metadata_version": version("imgclf"), "static": sorted(_static_files()),
    "accuracy": accuracy,
}))
"""
