"""The lecture notebook, ``examples/lecture2.ipynb``: stored without outputs, and run end to end.

The notebook runs in a real Jupyter kernel (nbclient + ipykernel) from its own folder,
as ``jupyter lab examples/`` would run it, with smaller sizes set by a cell inserted
after its parameters cell (papermill's convention). With the shared CIFAR-10 folder
present the notebook finds it itself (its cache already warm); elsewhere it gets a
small synthetic image folder. Every picture must arrive as a PNG, the Dataset as
HTML with its samples, the progress bars as a line updated in place.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "lecture2.ipynb"
SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"

SMALL = {  # about 10x less work than the notebook's own sizes
    "TRAIN_SIZE": 500,
    "TEST_SIZE": 100,
    "KS": [1, 3, 5, 10],
    "FOLDS": 5,
    "EPOCHS": 3,
    "HIDDEN": 32,
}
PICTURES = 10  # samples, neighbours, k-NN regions, CV curve, templates, the 3 hard cases for
#                a line, the net on the ring, the net's training curves: every one a PNG
METHODS = 7  # rows of the accuracy table


def test_the_notebook_is_stored_without_outputs():
    raw = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in raw["cells"] if cell["cell_type"] == "code"]
    assert code
    for cell in code:
        assert cell["outputs"] == [], cell["source"]
        assert cell["execution_count"] is None, cell["source"]
        assert "execution" not in cell["metadata"]
    assert "widgets" not in raw["metadata"]


def test_the_notebook_has_one_parameters_cell():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert set(SMALL) | {"DATA"} <= set(re.findall(r"^(\w+) =", tagged[0].source, re.M))


class RecordingClient(nbclient.NotebookClient):
    """Keeps every message that updates a display in place (progress bars use them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates: list[dict] = []

    def process_message(self, msg, cell, cell_index):
        in_place = (msg["content"].get("transient") or {}).get("display_id")
        if in_place and msg["msg_type"] in ("display_data", "update_display_data"):
            self.updates.append(msg)
        return super().process_message(msg, cell, cell_index)


@pytest.fixture
def data_parameter(request, tmp_path) -> str | None:
    """None where the notebook finds the shared CIFAR-10 folder, else a small folder's path."""
    if SHARED_CIFAR.is_dir():
        request.getfixturevalue("cifar_cache")  # the shared folder decoded once per session
        return None
    return str(_synthetic_folder(tmp_path / "images"))


def _synthetic_folder(root: Path) -> Path:
    """``train/`` and ``test/`` with 10 classes of 32x32 RGB images, each class its own tint."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 60), ("test", 20)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            tint = rng.integers(0, 256, 3)
            for i in range(count):
                noise = rng.normal(0, 40, (32, 32, 3))
                pixels = np.clip(tint + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _run(parameters: dict) -> tuple[nbformat.NotebookNode, list[dict]]:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    lines = [f"{name} = {value!r}" for name, value in parameters.items()]
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(lines)))
    client = RecordingClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # run where it lives
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    return notebook, client.updates


def _outputs(notebook) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def test_the_notebook_runs_end_to_end_on_a_subset(data_parameter):
    notebook, updates = _run({"DATA": data_parameter, **SMALL})
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"], "warnings in the notebook"

    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == PICTURES
    assert not [
        o
        for o in outputs
        if "<Figure" in o.get("data", {}).get("text/plain", "") and "image/png" not in o["data"]
    ], "a figure shown as text, not as a picture"

    html = [
        o["data"]["text/html"]
        for o in outputs
        if "Dataset(" in o.get("data", {}).get("text/html", "")
    ]
    assert len(html) == 1 and html[0].count("<img ") == 10
    assert f"{SMALL['TRAIN_SIZE']:,} images 32x32x3, 10 classes" in html[0]

    table = next(
        o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})
    )
    scores = [float(x) for x in re.findall(r"\| (\d\.\d{3}) \|", table)]
    assert len(scores) == METHODS and all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) > 0.15  # chance is 0.10: something was learned

    _check_progress(updates)


def _check_progress(updates: list[dict]) -> None:
    """Each bar starts at 0/N, ends at N/N and is then emptied, in the same display."""
    texts: dict[str, list[str]] = {}
    for msg in updates:
        display_id = msg["content"]["transient"]["display_id"]
        texts.setdefault(display_id, []).append(msg["content"]["data"].get("text/plain", ""))
    sweeps = [t for t in texts.values() if t[0].startswith("Sweeping k-NN: 0/")]
    assert sweeps, f"no k-NN sweep bar among {list(texts.values())[:3]}"
    for lines in texts.values():
        total = re.match(r".*: 0/(\d+|\?) ", lines[0]).group(1)
        assert lines[-1] == ""
        if total != "?":
            assert lines[-2].rsplit(": ", 1)[1].startswith(f"{total}/{total} ")


# --- the pieces the notebook relies on, in process --------------------------------------


def _dataset(images, labels, classes):
    from imgclf.datasets import Dataset

    return Dataset(images, np.asarray(labels), classes, name="<test> & co")


def _shown_images(page: str) -> list:
    import base64
    import io

    from PIL import Image

    payloads = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(p))) for p in payloads]


def test_a_dataset_shows_its_classes_and_one_sample_of_each_in_html():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 8, 6, 3), dtype=np.uint8)
    labels = np.arange(30) % 3
    page = _dataset(images, labels, ("<cat>", "dog", "a&b"))._repr_html_()
    assert "&lt;cat&gt; (10)" in page and "a&amp;b (10)" in page and "<cat>" not in page
    assert "&lt;test&gt; &amp; co" in page and "30 images 8x6x3, 3 classes" in page
    shown = _shown_images(page)
    assert len(shown) == 10  # the first of each class, then the second of each...
    first = np.asarray(shown[0].convert("RGB"))
    assert first.shape == (8, 6, 3) and np.array_equal(first, images[0])
    assert np.array_equal(np.asarray(shown[3].convert("RGB")), images[3])  # class 0 again


def test_greyscale_large_and_point_datasets_show_sensibly():
    grey = _dataset(np.full((2, 5, 5, 1), 7, np.uint8), [0, 1], ("a", "b"))._repr_html_()
    assert [image.mode for image in _shown_images(grey)] == ["L", "L"]
    large = _dataset(np.zeros((1, 600, 800, 3), np.uint8), [0], ("photo",))._repr_html_()
    assert max(_shown_images(large)[0].size) <= 256  # shrunk: the page stays small
    many = _dataset(np.zeros((30, 2, 2, 1), np.uint8), range(30), [f"c{i}" for i in range(30)])
    assert "and 10 more" in many._repr_html_()

    from imgclf.datasets import Dataset

    points = Dataset(None, np.array([0, 1]), ("x", "y"), points=np.zeros((2, 2)))
    assert "<img" not in points._repr_html_() and "Classes (points)" in points._repr_html_()


def test_progress_shows_in_a_jupyter_kernel_only(monkeypatch):
    import types

    from imgclf import _progress

    monkeypatch.delenv("IMGCLF_PROGRESS", raising=False)
    assert _progress.progress_mode() == "off"  # pytest's stderr is captured: no terminal
    ZMQInteractiveShell = type("ZMQInteractiveShell", (), {})
    colab_shell = type("Shell", (ZMQInteractiveShell,), {})()  # Colab subclasses it
    fake = types.SimpleNamespace(get_ipython=lambda: colab_shell)
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert _progress.progress_mode() == "notebook"
    monkeypatch.setenv("IMGCLF_PROGRESS", "0")
    assert _progress.progress_mode() == "off"
    terminal = types.SimpleNamespace(get_ipython=lambda: type("TerminalInteractiveShell", (), {})())
    monkeypatch.setitem(sys.modules, "IPython", terminal)
    monkeypatch.delenv("IMGCLF_PROGRESS")
    assert _progress.progress_mode() == "off"


def test_the_notebook_passes_the_linters():
    import shutil
    import subprocess

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run([ruff, *command, str(NOTEBOOK)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_dataset_on_disk_shows_its_samples_too(tmp_path, monkeypatch):
    from PIL import Image

    import imgclf

    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / f"c{c}").mkdir()
        for i in range(4):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / f"c{c}" / f"{i}.png")
    monkeypatch.setenv("IMGCLF_IN_MEMORY_BYTES", "100")  # anything larger stays on disk
    lazy = imgclf.load(str(tmp_path))["train"]
    assert lazy.lazy
    page = lazy._repr_html_()
    assert "Images on disk" in page
    rows = [0, 4, 8, 1]  # the folder lists class by class: the first of each class, then...
    for image, row in zip(_shown_images(page), rows, strict=False):
        assert np.array_equal(np.asarray(image.convert("RGB")), lazy.images[row])
