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
def _decoded_cifar(shared_cifar, tmp_path_factory):
    """The shared CIFAR-10 folder decoded once per test session, into a private cache."""
    from imgclf.datasets import load_folder

    cache = tmp_path_factory.mktemp("cifar-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(cache))
        return cache, load_folder(shared_cifar)


@pytest.fixture(scope="session")
def cifar_splits(_decoded_cifar):
    """``{"train", "test"}`` of the shared CIFAR-10 folder."""
    return _decoded_cifar[1]


@pytest.fixture
def cifar_cache(_decoded_cifar, monkeypatch) -> Path:
    """This test's cache is one that already holds the decoded CIFAR-10 (a warm load)."""
    monkeypatch.setenv("IMGCLF_CACHE", str(_decoded_cifar[0]))
    return _decoded_cifar[0]
