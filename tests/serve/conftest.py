"""Models, images and a real server (``imgclf serve`` in a subprocess) for the serve tests.

Models are trained once per session: k-NN, linear and net on the built-in
digits (8x8 grey) and, when the shared CIFAR-10 folder is here, on a small
folder of its JPEGs (symbolic links, nothing copied). One server serves them
all on 127.0.0.1 at a port it picks itself (``--port 0``), and is stopped
with SIGTERM after the session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.serve.client import Server

KINDS = ("knn", "linear", "net")
_PARAMS = {
    "knn": {"k": 5},
    "linear": {"epochs": 5, "seed": 0},
    "net": {"epochs": 5, "seed": 0, "hidden": 50},
}


def pytest_collection_modifyitems(items):
    """Every serve test needs the ``serve`` extra: skipped, with the reason, without it."""
    from importlib.util import find_spec

    missing = [
        m for m in ("uvicorn", "uvloop", "httptools", "prometheus_client") if not find_spec(m)
    ]
    if missing:
        skip = pytest.mark.skip(reason=f"needs {', '.join(missing)}: pip install 'imgclf[serve]'")
        for item in items:
            if "tests/serve" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(skip)


def _train(splits: dict, folder: Path, prefix: str, spec: str) -> dict[str, Path]:
    from imgclf import experiments, io

    paths = {}
    for kind in KINDS:
        fitted, train = experiments.train_model(splits, kind, dict(_PARAMS[kind]))
        path = folder / f"{prefix}-{kind}.imgclf"
        io.save(
            fitted,
            path,
            model_type=kind,
            class_names=train.classes,
            image_shape=train.image_shape,
            preprocessing="pixels",
            dataset=spec,
        )
        paths[kind] = path
    return paths


@pytest.fixture(scope="session")
def digits_files(tmp_path_factory) -> dict:
    """``{"models": {kind: path}, "images": [png paths]}``: digits models and test images."""
    from PIL import Image

    from imgclf.datasets import load_digits

    folder = tmp_path_factory.mktemp("digits-models")
    splits = load_digits()
    models = _train(splits, folder, "digits", "digits")
    images = []
    for i, image in enumerate(splits["test"].images[:12]):
        path = folder / f"digit{i}.png"
        Image.fromarray(image[:, :, 0]).save(path)
        images.append(path)
    big = folder / "digit-big.png"  # another size: resized as the loader does
    Image.fromarray(splits["test"].images[0][:, :, 0]).resize((24, 20)).save(big)
    images.append(big)
    return {"models": models, "images": images, "folder": folder}


def _cifar_subset(shared: Path, root: Path, per_class: dict[str, int]) -> Path:
    """``root/{train,test}/<class>/*.jpg``: links to the first files of each class."""
    for split, count in per_class.items():
        for class_dir in sorted((shared / split).iterdir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for source in sorted(class_dir.iterdir())[:count]:
                (target / source.name).symlink_to(source)
    return root


@pytest.fixture(scope="session")
def cifar_files(tmp_path_factory, shared_cifar) -> dict:
    """Models trained on 60 CIFAR-10 JPEGs per class; test JPEGs of every class."""
    from imgclf.datasets import load_folder

    folder = tmp_path_factory.mktemp("cifar-models")
    data = _cifar_subset(shared_cifar, folder / "cifar-small", {"train": 60, "test": 3})
    splits = load_folder(data)
    models = _train(splits, folder, "cifar", str(data))
    images = sorted((shared_cifar / "test").glob("*/000[0-1].jpg"))
    return {"models": models, "images": images, "data": data, "folder": folder}


@pytest.fixture(scope="session")
def all_models(digits_files, request) -> dict[str, Path]:
    """Served name -> model file: digits models always, CIFAR ones when the data is here."""
    models = {f"digits-{k}": p for k, p in digits_files["models"].items()}
    try:
        cifar = request.getfixturevalue("cifar_files")
    except pytest.skip.Exception:
        return models
    return models | {f"cifar-{k}": p for k, p in cifar["models"].items()}


@pytest.fixture(scope="session")
def server(all_models, tmp_path_factory, request):
    """One ``imgclf serve`` process serving every model, stopped (SIGTERM) at the end."""
    args = [f"{name}={path}" for name, path in all_models.items()]
    if "cifar-knn" in all_models:
        args += ["--data", str(request.getfixturevalue("cifar_files")["data"])]
    with Server(args, cwd=tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="session")
def saved_models(all_models) -> dict:
    """Served name -> the library's SavedModel of the same file."""
    from imgclf import io

    return {name: io.load(path) for name, path in all_models.items()}
