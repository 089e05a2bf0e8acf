"""Every module imports on its own, in a fresh interpreter.

The test suite imports modules in one order and shares them across tests, so
an import cycle can hide behind it (``imgclf.nn`` once failed alone because
``imgclf.linear`` happened to be imported first everywhere else). Here each
module gets an interpreter of its own; they run in a few parallel batches.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import imgclf

PACKAGE = Path(imgclf.__file__).parent


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_alone(module: str) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    return module, done.returncode, done.stderr[-2000:]


def test_the_module_list_is_complete():
    modules = all_modules()
    assert {"imgclf", "imgclf.nn", "imgclf.cli", "imgclf.neighbors.kernels.l1"} <= set(modules)


def test_every_module_imports_alone_in_a_fresh_interpreter():
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(import_alone, all_modules()))
    failures = {module: err for module, code, err in results if code != 0}
    assert not failures, "\n\n".join(f"{m}:\n{e}" for m, e in failures.items())


@pytest.mark.parametrize("heavy", ["sklearn", "scipy", "matplotlib", "numba", "typer"])
def test_import_imgclf_loads_no_heavy_dependency(heavy):
    """``import imgclf`` stays light: heavy libraries load where they are used."""
    code = f"import sys, imgclf; print({heavy!r} in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
