"""CIFAR loaders against small files written in the official formats.

The official batches were pickled by Python 2 (protocol 2, NumPy 1): its
``str`` became 8-bit strings and arrays refer to ``numpy.core.multiarray``.
``_py2_dumps`` writes the same bytes, so the fixtures exercise what a real
download holds; a Python 3 writer is covered as well.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import pickletools
import struct
import tarfile
import time
import tracemalloc

import numpy as np
import pytest

from imgclf.datasets import _safe_pickle
from imgclf.datasets._safe_pickle import safe_load
from imgclf.datasets.cifar import detect_cifar, load_cifar10, load_cifar100
from imgclf.errors import DatasetError, FormatError, UnsafePickleError
from tests import limited

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]  # 5 suffice here
FINE_NAMES = [f"fine{i}" for i in range(6)]
COARSE_NAMES = ["coarse0", "coarse1", "coarse2"]
PER_BATCH = 3
CIFAR10_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 wrote its str: 8-bit string opcodes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def _py2_dumps(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # NumPy 1 wrote the reconstructor under its old module name.
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def _py3_dumps(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _rows(images: np.ndarray) -> np.ndarray:
    """Official row layout of ``images`` (N, 32, 32, 3): R plane, G plane, B plane."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _images(rng, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _write(path, obj, dumps=_py2_dumps) -> None:
    path.write_bytes(dumps(obj))


def make_cifar10(root, dumps=_py2_dumps, seed=0):
    """Write ``root/cifar-10-batches-py``; return it and the expected train/test arrays."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    _write(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES]}, dumps)
    expected = {}
    for split, names in CIFAR10_BATCHES.items():
        images = _images(rng, PER_BATCH * len(names))
        labels = rng.integers(0, len(CIFAR10_NAMES), size=len(images))
        for k, name in enumerate(names):
            part = slice(k * PER_BATCH, (k + 1) * PER_BATCH)
            batch = {
                b"batch_label": f"batch {k + 1} of {len(names)}".encode(),
                b"labels": [int(v) for v in labels[part]],
                b"data": _rows(images[part]),
                b"filenames": [f"img_{k}_{j}.png".encode() for j in range(PER_BATCH)],
            }
            _write(folder / name, batch, dumps)
        expected[split] = (images, labels)
    return folder, expected


def make_cifar100(root, dumps=_py2_dumps, seed=1):
    """Write ``root/cifar-100-python``; return it and expected (images, fine, coarse)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    meta = {
        b"fine_label_names": [n.encode() for n in FINE_NAMES],
        b"coarse_label_names": [n.encode() for n in COARSE_NAMES],
    }
    _write(folder / "meta", meta, dumps)
    expected = {}
    for split, n in {"train": 5, "test": 4}.items():
        images = _images(rng, n)
        fine = rng.integers(0, len(FINE_NAMES), size=n)
        coarse = fine // 2
        batch = {
            b"filenames": [f"{split}_{j}.png".encode() for j in range(n)],
            b"batch_label": f"{split}ing batch 1 of 1".encode(),
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) for v in coarse],
            b"data": _rows(images),
        }
        _write(folder / split, batch, dumps)
        expected[split] = (images, fine, coarse)
    return folder, expected


def make_archive(folder, archive_name, skip=()):
    """Pack ``folder`` as the official archive does: the folder first, then its files."""
    archive = folder.parent / archive_name
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, recursive=False)
        for path in sorted(folder.iterdir()):
            if path.name not in skip:
                tar.add(path, arcname=f"{folder.name}/{path.name}")
    return archive


def _spot(path, form: str, archive_name: str):
    """``path`` (the batches folder) as given in ``form``.

    folder, parent (of the folder), archive, or archive-parent: a folder
    holding only the archive.
    """
    if form == "folder":
        return path
    if form == "parent":
        return path.parent
    archive = make_archive(path, archive_name)
    if form == "archive":
        return archive
    downloads = path.parent / "downloads"
    downloads.mkdir()
    archive.rename(downloads / archive_name)
    return downloads


class _Evil:
    """Unpickling this runs a shell command: what a hostile dataset file would do."""

    def __reduce__(self):
        return (os.system, ("touch SENTINEL",))


def _globals_in(payload: bytes) -> list[str]:
    return [arg for op, arg, _ in pickletools.genops(payload) if op.name == "GLOBAL"]


# --- loading -------------------------------------------------------------------


@pytest.mark.parametrize("form", ["folder", "parent", "archive", "archive-parent"])
@pytest.mark.parametrize("dumps", [_py2_dumps, _py3_dumps], ids=["py2-written", "py3-written"])
def test_cifar10_round_trip(tmp_path, form, dumps):
    folder, expected = make_cifar10(tmp_path, dumps)
    path = _spot(folder, form, "cifar-10-python.tar.gz")

    splits = load_cifar10(path)

    assert sorted(splits) == ["test", "train"]
    for split, (images, labels) in expected.items():
        ds = splits[split]
        assert ds.images.dtype == np.uint8 and ds.images.shape == (len(images), 32, 32, 3)
        assert ds.images.flags.c_contiguous
        np.testing.assert_array_equal(ds.images, images)
        assert ds.labels.dtype == np.int64
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.classes == tuple(CIFAR10_NAMES)
        assert ds.coarse_labels is None
        assert ds.name == f"cifar10:{path}"
    assert len(splits["train"]) == 5 * PER_BATCH and len(splits["test"]) == PER_BATCH


def test_cifar10_pixel_layout(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    batch = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="bytes")
    data = np.zeros_like(batch[b"data"])
    # Row layout: plane (R=0, G=1, B=2) * 1024 + row * 32 + col.
    data[1, 2 * 1024 + 5 * 32 + 7] = 200  # image 1, blue, row 5, col 7
    data[0, 0 * 1024 + 31 * 32 + 0] = 17  # image 0, red, row 31, col 0
    data[2, 1 * 1024 + 0 * 32 + 30] = 99  # image 2, green, row 0, col 30
    batch[b"data"] = data
    _write(folder / "data_batch_2", batch)

    images = load_cifar10(folder)["train"].images[PER_BATCH : 2 * PER_BATCH]

    assert images[1, 5, 7, 2] == 200
    assert images[0, 31, 0, 0] == 17
    assert images[2, 0, 30, 1] == 99
    assert np.count_nonzero(images) == 3


@pytest.mark.parametrize("form", ["folder", "parent", "archive", "archive-parent"])
def test_cifar100_fine_and_coarse(tmp_path, form):
    folder, expected = make_cifar100(tmp_path)
    path = _spot(folder, form, "cifar-100-python.tar.gz")

    splits = load_cifar100(path)

    for split, (images, fine, coarse) in expected.items():
        ds = splits[split]
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, fine)
        np.testing.assert_array_equal(ds.coarse_labels, coarse)
        assert ds.coarse_labels.dtype == np.int64
        assert ds.classes == tuple(FINE_NAMES)
        assert ds.coarse_classes == tuple(COARSE_NAMES)
        assert ds.name == f"cifar100:{path}"


def test_archive_with_dot_slash_members(tmp_path):
    folder, expected = make_cifar10(tmp_path)
    archive = tmp_path / "repacked.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=f"./{folder.name}")

    np.testing.assert_array_equal(load_cifar10(archive)["test"].labels, expected["test"][1])


# --- detection -----------------------------------------------------------------


@pytest.mark.parametrize("form", ["folder", "parent", "archive", "archive-parent"])
@pytest.mark.parametrize(
    ("make", "archive_name", "kind"),
    [
        (make_cifar10, "cifar-10-python.tar.gz", "cifar10"),
        (make_cifar100, "cifar-100-python.tar.gz", "cifar100"),
    ],
)
def test_detect(tmp_path, form, make, archive_name, kind):
    folder, _ = make(tmp_path / "data")
    path = _spot(folder, form, archive_name)

    assert detect_cifar(path) == kind


def test_detect_others(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an archive")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "train").mkdir()  # an image folder, not CIFAR-100
    (tmp_path / "images" / "meta").write_text("x")
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")

    for path in ["empty", "notes.txt", "images", "other.tar.gz", "absent"]:
        assert detect_cifar(tmp_path / path) is None, path


# --- hostile and damaged files ---------------------------------------------------


@pytest.mark.parametrize("in_archive", [False, True], ids=["folder", "archive"])
def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch, in_archive):
    folder, _ = make_cifar10(tmp_path / "data")
    payload = pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2)
    system = f"{os.system.__module__}.system"  # posix.system here, nt.system on Windows
    assert system.replace(".", " ") in _globals_in(payload)  # the payload is real
    (folder / "data_batch_1").write_bytes(payload)
    path = make_archive(folder, "cifar-10-python.tar.gz") if in_archive else folder
    monkeypatch.chdir(tmp_path)  # where "touch SENTINEL" would create its file

    with pytest.raises(UnsafePickleError) as caught:
        load_cifar10(path)

    message = str(caught.value)
    assert "data_batch_1" in message and system in message
    assert "nothing was executed" in message
    assert not (tmp_path / "SENTINEL").exists()


@pytest.mark.parametrize(
    ("function", "global_name"),
    [
        (eval, "__builtin__.eval"),  # protocol 2 writes Python 2 names
        (getattr, "__builtin__.getattr"),
        (np.load, "numpy.load"),  # NumPy is allowed name by name, not as a module
        (codecs.decode, "_codecs.decode"),
    ],
)
def test_safe_load_refuses_other_globals(function, global_name):
    class Hostile:
        def __reduce__(self):
            return (function, ("x",))

    payload = pickle.dumps([Hostile()], protocol=2)

    with pytest.raises(UnsafePickleError, match=rf"^batch: pickle refers to {global_name}, "):
        safe_load(io.BytesIO(payload), "batch")


def test_safe_load_refuses_bytes_with_a_size():
    class Huge:
        def __reduce__(self):
            return (bytes, (10**12,))

    with pytest.raises(UnsafePickleError, match=r"refers to bytes\(1000000000000,\)"):
        safe_load(io.BytesIO(pickle.dumps(Huge(), protocol=2)), "batch")


def test_safe_load_refuses_codecs_other_than_latin1():
    class Rot13:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(UnsafePickleError, match="'rot13'"):
        safe_load(io.BytesIO(pickle.dumps(Rot13(), protocol=2)), "batch")


def _patched(payload: bytes, old: bytes, new: bytes) -> bytes:
    assert payload.count(old) == 1
    return payload.replace(old, new)


@pytest.mark.parametrize("dumps", [_py2_dumps, _py3_dumps], ids=["py2-written", "py3-written"])
def test_safe_load_rebuilds_numpy_values(dumps):
    values = {
        b"ints": np.arange(12, dtype=np.int64).reshape(3, 4),
        b"fortran": np.asfortranarray(np.arange(6, dtype=">f4").reshape(2, 3)),
        b"empty": np.zeros((0, 3072), np.uint8),
        b"scalars": [np.int64(7), np.float32(0.5)],
    }

    loaded = safe_load(io.BytesIO(dumps(values)), "x")

    for key in (b"ints", b"fortran", b"empty"):
        assert type(loaded[key]) is np.ndarray and loaded[key].flags.writeable
        assert loaded[key].dtype == values[key].dtype
        np.testing.assert_array_equal(loaded[key], values[key])
    assert loaded[b"scalars"] == [7, 0.5]
    assert [type(v) for v in loaded[b"scalars"]] == [np.int64, np.float32]


def test_safe_load_refuses_object_arrays():
    payload = pickle.dumps(np.array([1, None], dtype=object), protocol=2)

    with pytest.raises(FormatError, match=r"^x: pickle holds a malformed NumPy value: dtype 'O8'"):
        safe_load(io.BytesIO(payload), "x")


def test_safe_load_ignores_dtype_flags_claiming_object_references():
    # The last field of a dtype's state is its flags; 1 says "holds object
    # references". NumPy's own unpickling believes it, so an array of such a
    # dtype would read its pixel bytes as pointers.
    flags_0, flags_1 = b"J\xff\xff\xff\xffK\x00t", b"J\xff\xff\xff\xffK\x01t"
    dtype_only = _patched(pickle.dumps(np.dtype(np.uint8), protocol=2), flags_0, flags_1)
    assert pickle.loads(dtype_only).hasobject  # the premise (no array is made from it)
    payload = _patched(pickle.dumps(np.arange(8, dtype=np.uint8), protocol=2), flags_0, flags_1)

    loaded = safe_load(io.BytesIO(payload), "x")

    assert loaded.dtype == np.uint8 and not loaded.dtype.hasobject
    np.testing.assert_array_equal(loaded, np.arange(8))


def test_safe_load_refuses_array_data_of_the_wrong_length():
    payload = _patched(_py2_dumps(np.zeros((2, 4), np.uint8)), b"K\x02K\x04\x86", b"K\x02K\x05\x86")

    with pytest.raises(FormatError, match=r"array of shape \(2, 5\) needs 10 bytes, found 8"):
        safe_load(io.BytesIO(payload), "x")


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02\x8e" + struct.pack("<Q", 1 << 60) + b"abc.",  # BINBYTES8 of 2**60 bytes
        b"\x80\x02T" + struct.pack("<i", 2**31 - 1) + b"abc.",  # BINSTRING of 2 GiB
        b"\x80\x02]r" + struct.pack("<I", 2**31) + b".",  # LONG_BINPUT at memo index 2**31
    ],
    ids=["bytes8", "binstring", "memo-index"],
)
def test_safe_load_refuses_sizes_the_file_cannot_hold(payload):
    # The C unpickler would allocate these sizes before noticing the data is missing.
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="^x: not a readable pickle"):
            safe_load(io.BytesIO(payload), "x")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("keep", [0, 1, 40, 0.5, -1], ids=["empty", "1B", "40B", "half", "less1"])
def test_truncated_pickle(tmp_path, keep):
    folder, _ = make_cifar10(tmp_path)
    whole = (folder / "data_batch_3").read_bytes()
    cut = int(len(whole) * keep) if isinstance(keep, float) else keep % len(whole)
    (folder / "data_batch_3").write_bytes(whole[:cut])

    with pytest.raises(FormatError, match="data_batch_3: not a readable pickle") as caught:
        load_cifar10(folder)
    assert type(caught.value) is FormatError


def test_truncated_archive(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    archive = make_archive(folder, "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    with pytest.raises(FormatError, match="cifar-10-python.tar.gz"):
        load_cifar10(archive)


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (np.zeros((PER_BATCH, 3071), np.uint8), r"a uint8 array of shape \(3, 3071\)"),
        (np.zeros((PER_BATCH, 3, 32, 32), np.uint8), r"a uint8 array of shape \(3, 3, 32, 32\)"),
        (np.zeros((PER_BATCH, 3072), np.float32), "a float32 array of shape"),
        ([0] * 3072, "a list"),
    ],
    ids=["short-rows", "4d", "float", "list"],
)
def test_wrong_data(tmp_path, data, found):
    folder, _ = make_cifar10(tmp_path)
    batch = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    batch[b"data"] = data
    _write(folder / "data_batch_1", batch)

    with pytest.raises(FormatError, match=rf"data_batch_1: data is {found}.*\(N, 3072\)"):
        load_cifar10(folder)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([0, 1], r"3 images but 2 labels"),
        ([0, 1, 2, 3], r"3 images but 4 labels"),
        ([0, 5, 1], r"labels must lie in \[0, 5\) for 5 class names, found 5"),
        ([0, -1, 1], r"labels must lie in \[0, 5\).*found -1"),
        ([0, 1.5, 1], r"labels are float64, expected integers"),
        ([[0], [1], [2]], "labels holds a list, expected a flat list of ints"),
        ([b"a", 1, 2], "labels holds a bytes, expected a flat list of ints"),
        (b"abc", "labels is a bytes, expected a list of ints"),
    ],
    ids=["too-few", "too-many", "too-high", "negative", "float", "nested", "bytes-item", "bytes"],
)
def test_bad_labels(tmp_path, labels, message):
    folder, _ = make_cifar10(tmp_path)
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    batch[b"labels"] = labels
    _write(folder / "test_batch", batch)

    with pytest.raises(FormatError, match=rf"test_batch: {message}"):
        load_cifar10(folder)


def test_coarse_label_out_of_range(tmp_path):
    folder, _ = make_cifar100(tmp_path)
    batch = pickle.loads((folder / "test").read_bytes(), encoding="bytes")
    batch[b"coarse_labels"][2] = len(COARSE_NAMES)
    _write(folder / "test", batch)

    with pytest.raises(FormatError, match=r"test: coarse_labels must lie in \[0, 3\).*found 3"):
        load_cifar100(folder)


@pytest.mark.parametrize(
    ("name", "key", "message"),
    [
        ("data_batch_4", b"data", "no 'data' entry; the dict holds batch_label, filenames, labels"),
        ("data_batch_4", b"labels", "no 'labels' entry"),
        ("batches.meta", b"label_names", "no 'label_names' entry; the dict holds nothing"),
    ],
)
def test_missing_key(tmp_path, name, key, message):
    folder, _ = make_cifar10(tmp_path)
    contents = pickle.loads((folder / name).read_bytes(), encoding="bytes")
    del contents[key]
    _write(folder / name, contents)

    with pytest.raises(FormatError, match=rf"{name}: {message}") as caught:
        load_cifar10(folder)
    # One line naming the file once, not an error inside an error.
    assert str(caught.value).count(str(folder / name)) == 1 and "\n" not in str(caught.value)


def test_batch_that_is_not_a_dict(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    _write(folder / "data_batch_5", [1, 2, 3])

    with pytest.raises(FormatError, match="data_batch_5: holds a list, expected a dict"):
        load_cifar10(folder)


@pytest.mark.parametrize("in_archive", [False, True], ids=["folder", "archive"])
def test_missing_batch_file(tmp_path, in_archive):
    folder, _ = make_cifar10(tmp_path)
    if in_archive:
        path = make_archive(folder, "cifar-10-python.tar.gz", skip={"data_batch_3"})
    else:
        (folder / "data_batch_3").unlink()
        path = folder

    with pytest.raises(DatasetError, match=r"data_batch_3.*missing") as caught:
        load_cifar10(path)
    assert not isinstance(caught.value, FormatError)


@pytest.mark.parametrize("what", ["absent", "empty-folder", "cifar100-folder"])
def test_no_cifar10_there(tmp_path, what):
    path = tmp_path / what
    if what == "empty-folder":
        path.mkdir()
    elif what == "cifar100-folder":
        make_cifar100(path)

    with pytest.raises(DatasetError, match=str(path)):
        load_cifar10(path)


# --- hostile files: bounded time and memory ------------------------------------------


def _shared_tuples(levels: int) -> bytes:
    """A pickle of ``t = (t, t)`` nested ``levels`` deep: tiny, 2**levels paths."""
    t = ()
    for _ in range(levels):
        t = (t, t)
    return pickle.dumps({b"data": t, b"labels": []}, protocol=2)


def _shared_lists(levels: int) -> list:
    t = [0]
    for _ in range(levels):
        t = [t, t]
    return t


def run_limited(call: str, timeout: float = 60) -> tuple[str, float]:
    """``call`` in a fresh Python under a 1 GiB cap (see :mod:`tests.limited`)."""
    return limited.run_limited("from imgclf.datasets.cifar import load_cifar10", call, timeout)


def test_shared_tuples_are_refused_at_once(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    payload = _shared_tuples(40)
    assert len(payload) < 300  # the 262-byte file: 2**40 paths
    (folder / "data_batch_1").write_bytes(payload)

    out, seconds = run_limited(f"load_cifar10({str(folder)!r})")

    assert out.startswith("FormatError ") and "data_batch_1: refused" in out
    assert "tuple expands to" in out
    assert seconds < 30


def test_shared_tuple_as_a_dict_key_is_refused_before_hashing():
    # Building {t: 1} hashes t, walking every path in C code no timer stops.
    # (Not built here with a dict: that would hash it.)
    t = ()
    for _ in range(40):
        t = (t, t)
    payload = b"\x80\x02}" + pickle.dumps(t, protocol=2)[2:-1] + b"K\x01s."

    start = time.perf_counter()
    with pytest.raises(FormatError, match="x: refused, a tuple expands to"):
        safe_load(io.BytesIO(payload), "x")
    assert time.perf_counter() - start < 5


def test_shared_tuples_within_budget_are_built_once():
    loaded = safe_load(io.BytesIO(_shared_tuples(12)), "x")

    assert loaded[b"data"][0] is loaded[b"data"][1]  # shared, as in the file


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_shared_lists(40), "nested more than 32 deep"),
        (_shared_lists(25), r"the values expand to more than 1,500,000 nodes"),
    ],
    ids=["lists-40", "lists-25"],
)
def test_deep_or_shared_lists_are_refused(value, message):
    payload = pickle.dumps({b"labels": value}, protocol=2)

    with pytest.raises(FormatError, match=f"x: refused, .*{message}"):
        safe_load(io.BytesIO(payload), "x")


def test_expansion_budget(monkeypatch):
    monkeypatch.setattr(_safe_pickle, "MAX_NODES", 1000)
    payload = pickle.dumps({b"labels": _shared_lists(12)}, protocol=2)  # 8,191 nodes as a tree

    with pytest.raises(FormatError, match=r"x: refused, the values expand to more than 1,000"):
        safe_load(io.BytesIO(payload), "x")


def test_opcode_budget(monkeypatch):
    monkeypatch.setattr(_safe_pickle, "MAX_OPCODES", 100)
    payload = pickle.dumps(list(range(200)), protocol=2)

    with pytest.raises(FormatError, match=r"x: refused, more than 100 opcodes"):
        safe_load(io.BytesIO(payload), "x")


def test_self_containing_list_is_refused():
    loop = []
    loop.append(loop)

    with pytest.raises(FormatError, match="x: refused, a value contains itself"):
        safe_load(io.BytesIO(pickle.dumps({b"labels": loop}, protocol=2)), "x")


def test_one_buffer_behind_many_arrays_is_refused():
    data = bytes(4096)

    class SharedData:
        def __reduce__(self):
            state = (1, (4096,), np.dtype(np.uint8), False, data)
            return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)

    payload = pickle.dumps([SharedData() for _ in range(100)], protocol=2)
    assert len(payload) < 8192  # 100 arrays of 4 KB from one 4 KB string

    with pytest.raises(FormatError, match=r"x: refused, its arrays hold more than its"):
        safe_load(io.BytesIO(payload), "x")


def test_pickle_larger_than_the_budget_is_not_read_past_it():
    stream = io.BytesIO(pickle.dumps(bytes(1000), protocol=2))

    with pytest.raises(FormatError, match=r"x: more than 100 bytes, larger than any CIFAR"):
        safe_load(stream, "x", max_bytes=100)
    assert stream.tell() == 101


def test_batch_file_larger_than_its_layout_is_refused_unread(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    with open(folder / "data_batch_2", "r+b") as f:
        f.truncate(3 << 30)  # sparse: 3 GB declared, nothing written

    out, seconds = run_limited(f"load_cifar10({str(folder)!r})")

    assert out.startswith("FormatError ") and "data_batch_2: 3,221,225,472 bytes, too large" in out
    assert "a CIFAR-10 batch of 10,000 images needs at most" in out


def _tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _zeros_gz(mib: int) -> bytes:
    """``mib`` MiB of zeros as concatenated gzip members: about 1 KB per MiB."""
    return gzip.compress(bytes(1 << 20), compresslevel=9) * mib


def test_archive_member_declaring_gigabytes_is_refused_unread(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    archive = make_archive(folder, "cifar-10-python.tar.gz", skip={"data_batch_1"})
    # A member header declaring 3 GB, and 3 MB of its zeros: a decompression bomb.
    bomb = gzip.compress(_tar_header("cifar-10-batches-py/data_batch_1", 3 << 30))
    archive.write_bytes(bomb + _zeros_gz(3000) + archive.read_bytes())

    out, seconds = run_limited(f"load_cifar10({str(archive)!r})")

    assert out.startswith("FormatError ")
    assert "cifar-10-batches-py/data_batch_1 in " in out and "3,221,225,472 bytes, too large" in out
    assert seconds < 30


@pytest.mark.parametrize(
    ("kind", "message", "detected"),
    [
        (tarfile.REGTYPE, "member 'cifar-10-batches-py/readme.html' declares 1,099,511", "cifar10"),
        (tarfile.GNUTYPE_LONGNAME, "extended header (long name or pax) of 1,099,511", None),
        (tarfile.XHDTYPE, "extended header (long name or pax) of 1,099,511", None),
    ],
    ids=["member", "gnu-long-name", "pax-header"],
)
def test_archive_inflating_past_its_files_budget_is_refused(tmp_path, kind, message, detected):
    # tarfile skips an unwanted member by reading it, and reads a long name or
    # a pax header whole: a header declaring a terabyte, then 300 MB of zeros.
    # (Past the per-header limit, the stream's own limit stops any other read.)
    header = _tar_header("cifar-10-batches-py/readme.html", 1 << 40, kind)
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(gzip.compress(header) + _zeros_gz(300))
    assert archive.stat().st_size < 1 << 20

    out, seconds = run_limited(f"load_cifar10({str(archive)!r})")

    assert out.startswith(f"FormatError {archive}: ") and message in out
    assert seconds < 30
    start = time.perf_counter()
    assert detect_cifar(archive) == detected  # from the first header, read within 1 MiB
    assert time.perf_counter() - start < 5


def test_archive_with_too_many_members(tmp_path):
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(1001):
            tar.addfile(tarfile.TarInfo(f"x/{i}"), io.BytesIO())

    with pytest.raises(FormatError, match=r"many.tar.gz: more than 1,000 members"):
        load_cifar10(archive)


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_protocol_5_batches_are_read(tmp_path, form):
    folder, expected = make_cifar10(tmp_path, lambda obj: pickle.dumps(obj, protocol=5))
    path = _spot(folder, form, "cifar-10-python.tar.gz")

    splits = load_cifar10(path)

    for split, (images, labels) in expected.items():
        np.testing.assert_array_equal(splits[split].images, images)
        np.testing.assert_array_equal(splits[split].labels, labels)


def test_protocol_5_arrays_in_every_memory_order():
    base = np.arange(24, dtype="<i4").reshape(2, 3, 4)
    values = [base, np.asfortranarray(base), base.transpose(2, 0, 1), np.zeros((0, 5), ">f8")]

    loaded = safe_load(io.BytesIO(pickle.dumps(values, protocol=5)), "x")

    for got, want in zip(loaded, values, strict=True):
        assert got.dtype == want.dtype and got.flags.writeable
        np.testing.assert_array_equal(got, want)


def test_protocol_5_out_of_band_buffers_are_refused():
    payload = pickle.dumps(np.arange(4), protocol=5, buffer_callback=lambda buffer: False)

    with pytest.raises(FormatError, match="x: not a readable pickle"):
        safe_load(io.BytesIO(payload), "x")


def test_dict_with_many_keys_is_named_briefly(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    _write(folder / "batches.meta", {str(i).encode(): 0 for i in range(10_000)} | {10**5000: 1})

    with pytest.raises(FormatError, match=r"no 'label_names' entry; .* and 9,981 more$"):
        load_cifar10(folder)


def test_split_without_images(tmp_path):
    folder, _ = make_cifar10(tmp_path)
    empty = {b"labels": [], b"data": np.zeros((0, 3072), np.uint8)}
    _write(folder / "test_batch", empty)

    with pytest.raises(FormatError, match=r"test_batch: no images in the test split"):
        load_cifar10(folder)


def test_archive_stream_stops_at_its_limit(tmp_path):
    from imgclf.datasets.cifar import _open_tar

    archive = tmp_path / "big.tar.gz"
    archive.write_bytes(gzip.compress(_tar_header("x", 2 << 20)) + _zeros_gz(3))

    message = r"big.tar.gz: decompresses to more than 1,048,576"
    with pytest.raises(FormatError, match=message), _open_tar(archive, 1 << 20) as tar:
        for info in tar:
            tar.extractfile(info).read()
