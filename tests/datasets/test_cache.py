"""The decoded-folder cache: round trips, and every damaged entry read as a miss."""

import json
import tracemalloc

import numpy as np
import pytest

from imgclf.datasets import cache

DIGEST = "ab" * 32


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, (5, 4, 3, 3), dtype=np.uint8),
        "train_labels": np.arange(5, dtype=np.int64) % 2,
    }


@pytest.fixture
def entry(tmp_path, arrays):
    path = tmp_path / "entry.npz"
    cache.write_entry(path, DIGEST, {"splits": {"train": {"classes": ["a", "b"]}}}, arrays)
    return path


def forge(path, header: dict, payload: bytes = b"", length: int | None = None):
    """An entry with any header (and length field) we like, laid out as write_entry does."""
    blob = json.dumps(header).encode()
    head = cache._MAGIC + (len(blob) if length is None else length).to_bytes(8, "little") + blob
    path.write_bytes(head + bytes(cache._aligned(len(head)) - len(head)) + payload)
    return path


def spec(dtype="|u1", shape=(4,), offset=0):
    return {"dtype": dtype, "shape": list(shape), "offset": offset}


def header(**arrays):
    return {"digest": DIGEST, "format": cache._FORMAT, "arrays": arrays}


def test_round_trip(entry, arrays):
    header, found = cache.read_entry(entry, DIGEST)
    assert header["splits"] == {"train": {"classes": ["a", "b"]}}
    assert found.keys() == arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(found[name], arrays[name])
        assert found[name].dtype == arrays[name].dtype


def test_another_digest_or_format_is_a_miss(entry, tmp_path):
    assert cache.read_entry(entry, "cd" * 32) is None
    assert cache.read_entry(forge(tmp_path / "f", {**header(), "format": 99}), DIGEST) is None


def test_a_valid_forged_entry_reads(tmp_path):
    path = forge(tmp_path / "e", header(x=spec(shape=(2, 2))), bytes(range(4)))
    np.testing.assert_array_equal(cache.read_entry(path, DIGEST)[1]["x"], [[0, 1], [2, 3]])


def test_every_truncation_is_a_miss(entry):
    data = entry.read_bytes()
    # the last 64 bytes are the 40 of the labels and 24 of padding (harmless to lose)
    for end in sorted({0, 3, 8, 12, 16, 40, len(data) // 2, len(data) - 64, len(data) - 25}):
        entry.write_bytes(data[:end])
        assert cache.read_entry(entry, DIGEST) is None, end


@pytest.mark.parametrize(
    "damage",
    [
        {"x": spec(shape=(10**12, 10**12))},  # 10^24 bytes declared, 4 held
        {"x": spec(shape=(2**62, 4))},  # overflows int64 in np.prod
        {"x": spec(shape=(-1, 4))},
        {"x": spec(shape=(True, 4))},
        {"x": spec(shape=(2.5,))},
        {"x": spec(shape="4")},
        {"x": spec(shape=[1] * 40)},
        {"x": spec(offset=10**9)},
        {"x": spec(offset=-64)},
        {"x": spec(offset="0")},
        {"x": spec(dtype="|O")},
        {"x": spec(dtype="<f8")},
        {"x": spec(dtype=["|u1"])},
        {"x": "not a spec"},
        {"x": spec(shape=(5,))},  # one byte past the end
    ],
)
def test_forged_array_specs_are_misses(tmp_path, damage):
    path = forge(tmp_path / "e", header(**damage), bytes(4))
    assert cache.read_entry(path, DIGEST) is None


@pytest.mark.parametrize(
    "top",
    [[], "text", 5, None, {"digest": DIGEST, "format": cache._FORMAT, "arrays": [1]}],
    ids=["list", "string", "number", "null", "arrays-not-a-dict"],
)
def test_headers_of_the_wrong_type_are_misses(tmp_path, top):
    assert cache.read_entry(forge(tmp_path / "e", top), DIGEST) is None


def test_deeply_nested_header_is_a_miss(tmp_path):
    path = tmp_path / "e"
    blob = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(cache._MAGIC + len(blob).to_bytes(8, "little") + blob)
    assert cache.read_entry(path, DIGEST) is None


def test_not_json_or_not_utf8_is_a_miss(tmp_path):
    for blob in (b"{nope", b'{"a": "\xff"}'):
        path = tmp_path / "e"
        path.write_bytes(cache._MAGIC + len(blob).to_bytes(8, "little") + blob)
        assert cache.read_entry(path, DIGEST) is None


@pytest.mark.parametrize("length", [0, 5, 2**63 - 1, 2**64 - 1, 500_000_000])
def test_wrong_length_fields_are_misses_without_allocating(entry, length):
    data = bytearray(entry.read_bytes())
    data[8:16] = length.to_bytes(8, "little")
    entry.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        assert cache.read_entry(entry, DIGEST) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # never more than the file's own size


def test_declared_arrays_beyond_the_file_are_not_allocated(tmp_path):
    path = forge(tmp_path / "e", header(x=spec(shape=(400, 1000, 1000))), bytes(64))
    tracemalloc.start()
    try:
        assert cache.read_entry(path, DIGEST) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # 400 MB declared, none asked for


def test_missing_or_unreadable_files_are_misses(tmp_path):
    assert cache.read_entry(tmp_path / "absent", DIGEST) is None
    assert cache.read_entry(tmp_path, DIGEST) is None  # a folder


def test_manifest_digest_takes_names_that_are_not_utf8():
    import os

    name = os.fsdecode(b"cat/\xff\xfe.png")
    assert cache.manifest_digest([name + "\0" + "1\0" + "2"]) != cache.manifest_digest(["x"])
