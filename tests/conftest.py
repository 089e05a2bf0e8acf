"""Shared fixtures: an isolated cache per test and the path of the shared data."""

from pathlib import Path

import pytest

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its caches to a fresh folder, never the user's."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("IMGCLF_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def shared_cifar() -> Path:
    if not SHARED_CIFAR.is_dir():
        pytest.skip(f"shared CIFAR-10 JPEG folder not found at {SHARED_CIFAR}")
    return SHARED_CIFAR


@pytest.fixture(scope="session")
def cifar_splits(shared_cifar, tmp_path_factory):
    """The shared CIFAR-10 folder, decoded once per test session (into a private cache)."""
    from imgclf.datasets import load_folder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(tmp_path_factory.mktemp("cifar-cache")))
        return load_folder(shared_cifar)
