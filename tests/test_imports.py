"""Every module imports on its own, in a process where no other imgclf module is loaded.

The test suite imports modules in one order and shares them across tests, so
an import cycle can hide behind it (``imgclf.nn`` once failed alone because
``imgclf.linear`` happened to be imported first everywhere else). Here each
module is imported first in a process of its own: a fresh interpreter loads the
heavy third-party libraries once (:data:`PRELOADED`, top-level packages only) and
forks one child per module, so that the ~110 imports take seconds, not the
~100 s of an interpreter each. A few packages are also imported in a wholly
fresh interpreter, and ``tests/test_cli_fresh.py`` runs every command in one.
"""

import subprocess
import sys
import textwrap
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


# third-party packages the forking interpreter loads before any imgclf module (their top
# level only: a module that uses a submodule it did not import still fails alone)
PRELOADED = ["numpy", "scipy", "sklearn", "numba", "matplotlib", "PIL", "typer", "rich"]

# Imports each module named on the command line in a forked child, with no imgclf module
# loaded before; prints "module<TAB>traceback" for each failure, separated by NUL bytes.
FORKING_IMPORTER = textwrap.dedent(r"""
    import importlib, os, sys, traceback
    for package in sys.argv[1].split(","):
        importlib.import_module(package)
    assert not [m for m in sys.modules if m.split(".")[0] == "imgclf"]
    for module in sys.argv[2:]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                importlib.import_module(module)
                os._exit(0)
            except BaseException:
                os.write(write, traceback.format_exc()[-2000:].encode())
                os._exit(1)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            error = pipe.read().decode(errors="replace")
        if os.waitpid(pid, 0)[1] != 0:
            sys.stdout.write(module + "\t" + (error or "(died without a traceback)") + "\0")
""")


def import_alone(module: str) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    return module, done.returncode, done.stderr[-2000:]


def imports_in_forks(modules: list[str]) -> dict[str, str]:
    """``{module: traceback}`` of the modules that fail to import first in a forked child."""
    done = subprocess.run(
        [sys.executable, "-c", FORKING_IMPORTER, ",".join(PRELOADED), *modules],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    failures = [entry.split("\t", 1) for entry in done.stdout.split("\0") if entry]
    return dict(failures)


def test_the_module_list_is_complete():
    modules = all_modules()
    assert {"imgclf", "imgclf.nn", "imgclf.cli", "imgclf.neighbors.kernels.l1"} <= set(modules)


def test_every_module_imports_first_in_a_process_of_its_own():
    modules = all_modules()
    with ThreadPoolExecutor(max_workers=2) as pool:  # two forking interpreters, half each
        halves = pool.map(imports_in_forks, [modules[::2], modules[1::2]])
    failures = {module: error for half in halves for module, error in half.items()}
    assert not failures, "\n\n".join(f"{m}:\n{e}" for m, e in failures.items())


def test_the_forking_importer_reports_the_modules_that_fail(tmp_path):
    """``cyc.a`` and ``cyc.b`` import each other's names (a cycle); ``cyc.ok`` is fine."""
    package = tmp_path / "cyc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyc.b import helper\nVALUE = 1\n")
    (package / "b.py").write_text("from cyc.a import VALUE\n\ndef helper():\n    return VALUE\n")
    (package / "ok.py").write_text("import json\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + FORKING_IMPORTER
    done = subprocess.run([sys.executable, "-c", code, "json", "cyc.a", "cyc.ok", "cyc.b"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    failures = dict(e.split("\t", 1) for e in done.stdout.split("\0") if e)
    assert set(failures) == {"cyc.a", "cyc.b"} and "ImportError" in failures["cyc.a"]


@pytest.mark.parametrize("module", ["imgclf.cli", "imgclf.nn", "imgclf.neighbors", "imgclf.serve"])
def test_packages_import_alone_in_a_fresh_interpreter(module):
    _, code, error = import_alone(module)
    assert code == 0, error


@pytest.mark.parametrize("heavy", ["sklearn", "scipy", "matplotlib", "numba", "typer"])
def test_import_imgclf_loads_no_heavy_dependency(heavy):
    """``import imgclf`` stays light: heavy libraries load where they are used."""
    code = f"import sys, imgclf; print({heavy!r} in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
