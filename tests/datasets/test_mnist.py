"""MNIST loader against small IDX files written here, raw and gzipped."""

from __future__ import annotations

import gzip
import struct
import tracemalloc

import numpy as np
import pytest

from imgclf.datasets.mnist import detect_mnist, load_mnist, read_idx
from imgclf.errors import DatasetError, FormatError
from tests import limited

FASHION = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray, type_code: int = 0x08, magic: int | None = None) -> bytes:
    """The IDX encoding of ``array``: magic, big-endian dimensions, big-endian values."""
    if magic is None:
        magic = (type_code << 8) | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes, gz: bool = False):
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_mnist(folder, gz=False, shape=(28, 28), counts=None, seed=0):
    """Write the four files into ``folder``; return the expected (images, labels) per split."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    counts = counts or {"train": 6, "test": 4}
    expected = {}
    for split, (images_name, labels_name) in FILES.items():
        images = rng.integers(0, 256, size=(counts[split], *shape), dtype=np.uint8)
        labels = rng.integers(0, 10, size=counts[split], dtype=np.uint8)
        write(folder / images_name, idx_bytes(images), gz)
        write(folder / labels_name, idx_bytes(labels), gz)
        expected[split] = (images, labels)
    return expected


# --- loading -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_round_trip(tmp_path, gz):
    expected = make_mnist(tmp_path / "mnist", gz)

    splits = load_mnist(tmp_path / "mnist")

    assert sorted(splits) == ["test", "train"]
    for split, (images, labels) in expected.items():
        ds = splits[split]
        assert ds.images.dtype == np.uint8 and ds.images.shape == (len(images), 28, 28, 1)
        np.testing.assert_array_equal(ds.images[..., 0], images)
        assert ds.labels.dtype == np.int64
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.classes == tuple("0123456789")
        assert ds.name == f"mnist:{tmp_path / 'mnist'}"


def test_pixel_layout_follows_header(tmp_path):
    """Rows and columns come from the header, row-major: not assumed to be 28 x 28."""
    expected = make_mnist(tmp_path, shape=(5, 7))
    images, _ = expected["train"]
    images[:] = 0
    images[2, 3, 6] = 255  # image 2, row 3, column 6: byte 2*35 + 3*7 + 6 of the data
    raw = idx_bytes(images)
    assert raw[16 + 2 * 35 + 3 * 7 + 6] == 255
    write(tmp_path / "train-images-idx3-ubyte", raw)

    loaded = load_mnist(tmp_path)["train"].images

    assert loaded.shape == (6, 5, 7, 1)
    assert loaded[2, 3, 6, 0] == 255 and np.count_nonzero(loaded) == 1


@pytest.mark.parametrize(
    ("folder", "fashion", "classes"),
    [
        ("fashion-mnist", None, FASHION),
        ("FashionMNIST/raw", None, FASHION),
        ("Fashion_MNIST", None, FASHION),
        ("digits", True, FASHION),
        ("fashion-mnist", False, tuple("0123456789")),
        ("MNIST/raw", None, tuple("0123456789")),
    ],
)
def test_class_names(tmp_path, folder, fashion, classes):
    make_mnist(tmp_path / folder, gz=True)

    splits = load_mnist(tmp_path / folder, fashion=fashion)

    assert splits["train"].classes == splits["test"].classes == classes
    prefix = "fashion-mnist" if classes == FASHION else "mnist"
    assert splits["test"].name == f"{prefix}:{tmp_path / folder}"


def test_torchvision_root(tmp_path):
    expected = make_mnist(tmp_path / "FashionMNIST" / "raw")

    splits = load_mnist(tmp_path / "FashionMNIST")

    np.testing.assert_array_equal(splits["test"].labels, expected["test"][1])
    assert splits["test"].classes == FASHION


def test_gunzipped_file_still_named_gz(tmp_path):
    expected = make_mnist(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.rename(tmp_path / "t10k-images-idx3-ubyte.gz")  # raw bytes, .gz name

    loaded = load_mnist(tmp_path)["test"].images

    np.testing.assert_array_equal(loaded[..., 0], expected["test"][0])


@pytest.mark.parametrize(
    ("type_code", "dtype"),
    [(0x08, np.uint8), (0x09, np.int8), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")],
)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_any_type(tmp_path, type_code, dtype, gz):
    values = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    path = write(tmp_path / "values.idx", idx_bytes(values, type_code), gz)

    array = read_idx(path)

    np.testing.assert_array_equal(array, values)
    assert array.dtype == np.dtype(dtype).newbyteorder("=")
    assert array.dtype.isnative and array.flags.writeable


# --- detection -----------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_detect(tmp_path, gz):
    make_mnist(tmp_path / "a", gz)
    make_mnist(tmp_path / "b" / "raw", gz)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_bytes(b"")

    assert detect_mnist(tmp_path / "a") and detect_mnist(tmp_path / "b")
    assert not detect_mnist(tmp_path / "empty")
    assert not detect_mnist(tmp_path / "file")
    assert not detect_mnist(tmp_path / "absent")


# --- bad files -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_labels_file_with_image_magic(tmp_path, gz):
    make_mnist(tmp_path, gz)
    images, _ = make_mnist(tmp_path / "other")["train"]
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(images), gz)

    name = "train-labels-idx1-ubyte" + (".gz" if gz else "")
    message = rf"{name}: magic number 2051, expected 2049 \(an IDX label file\)"
    with pytest.raises(FormatError, match=message):
        load_mnist(tmp_path)


def test_images_file_with_label_magic(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros(4, np.uint8)))

    message = r"t10k-images-idx3-ubyte: magic number 2049, expected 2051 \(an IDX image file\)"
    with pytest.raises(FormatError, match=message):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x08", r"2 bytes long, too short for an IDX magic number"),
        (b"\x12\x34\x08\x01\x00", r"magic number 305399809 \(0x12340801\), expected an IDX"),
        (b"\x00\x00\x07\x01\x00", r"magic number 1793 \(0x00000701\), expected an IDX"),
        (b"\x00\x00\x08\x00", r"magic number 2048 .*dimensions above 0"),
        (
            b"\x00\x00\x08\x02\x00\x00\x00\x01",
            r"truncated: 8 bytes, a header of 2 dimensions needs 12",
        ),
    ],
    ids=["short", "nonzero-prefix", "unknown-type", "no-dimensions", "short-header"],
)
def test_read_idx_bad_header(tmp_path, data, message):
    path = write(tmp_path / "bad.idx", data)

    with pytest.raises(FormatError, match=rf"bad.idx: {message}"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_truncated_images(tmp_path, gz):
    expected = make_mnist(tmp_path, gz, counts={"train": 10, "test": 4})
    whole = idx_bytes(expected["train"][0])
    write(tmp_path / "train-images-idx3-ubyte", whole[: 16 + 784], gz)

    message = r"truncated: 784 bytes of pixel data, header promises 7840 \(10 x 28 x 28\)"
    with pytest.raises(FormatError, match=rf"train-images-idx3-ubyte(\.gz)?: {message}"):
        load_mnist(tmp_path)


def test_truncated_labels(tmp_path):
    expected = make_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(expected["test"][1])[:-1])

    message = r"t10k-labels-idx1-ubyte: truncated: 3 bytes of label data, header promises 4"
    with pytest.raises(FormatError, match=message):
        load_mnist(tmp_path)


def test_trailing_bytes(tmp_path):
    expected = make_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(expected["test"][1]) + b"\x00\x00")

    message = r"6 bytes of label data, header promises 4 \(4\); 2 bytes too many"
    with pytest.raises(FormatError, match=message):
        load_mnist(tmp_path)


def test_mismatched_counts(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(5, np.uint8)))

    message = r"train-labels-idx1-ubyte: 5 labels, but .*train-images-idx3-ubyte holds 6 images"
    with pytest.raises(FormatError, match=message):
        load_mnist(tmp_path)


def test_label_out_of_range(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 10, 3], np.uint8)))

    with pytest.raises(FormatError, match=r"labels must lie in \[0, 10\).*found 10"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "bad-header"])
def test_corrupt_gzip(tmp_path, damage):
    make_mnist(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2 :]
    elif damage == "flipped":
        data[-6] ^= 0xFF  # inside the CRC-32 trailer: the data no longer matches it
    else:
        data[2] = 99  # compression method 99 does not exist
    path.write_bytes(bytes(data))

    with pytest.raises(FormatError, match=r"train-images-idx3-ubyte.gz: corrupt gzip data"):
        load_mnist(tmp_path)


def test_missing_file(tmp_path):
    make_mnist(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte: missing") as caught:
        load_mnist(tmp_path)
    assert not isinstance(caught.value, FormatError)


def test_not_a_folder(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        load_mnist(tmp_path / "absent")


# --- hostile files: bounded time and memory ------------------------------------------


def run_limited(call: str, timeout: float = 60) -> tuple[str, float]:
    """``call`` in a fresh Python under a 1 GiB cap (see :mod:`tests.limited`)."""
    return limited.run_limited(
        "from imgclf.datasets.mnist import load_mnist, read_idx", call, timeout
    )


def _zeros_gz(mib: int) -> bytes:
    """``mib`` MiB of zeros as concatenated gzip members: about 1 KB per MiB."""
    return gzip.compress(bytes(1 << 20), compresslevel=9) * mib


def test_gzip_inflating_past_its_header_is_refused(tmp_path):
    # The header promises 60,000 images (47 MB); the stream goes on to 3 GB.
    header = struct.pack(">IIII", 2051, 60_000, 28, 28)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header) + _zeros_gz(3 * 1024))
    assert path.stat().st_size < 4 << 20

    out, seconds = run_limited(f"read_idx({str(path)!r})")

    assert out.startswith("FormatError ") and str(path) in out
    assert "more than 47,105,536 bytes of pixel data, header promises 47040000" in out
    assert "refused without reading the rest" in out
    assert seconds < 30


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_absurd_header_sizes_are_refused_before_allocating(tmp_path, gz):
    path = write(tmp_path / "images", struct.pack(">IIII", 2051, 2**32 - 1, 2**32 - 1, 28), gz)

    out, seconds = run_limited(f"read_idx({str(path)!r})")

    assert out.startswith("FormatError ") and str(path) in out
    assert "header promises" in out and "4294967295 x 4294967295 x 28" in out
    if gz:
        assert "more than the 1,073,741,824 imgclf reads from an IDX file" in out
    else:  # the file's own size says it at once
        assert "truncated: 0 bytes of pixel data" in out
    assert seconds < 30


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (
            1000,
            r"truncated: header promises 784,000 bytes of pixel data \(1000 x 28 x 28\), "
            r"more than the file can hold",
        ),
        (40, r"truncated: 0 bytes of pixel data, header promises 31360 \(40 x 28 x 28\)"),
    ],
    ids=["beyond-the-gzip-ratio", "within-it"],
)
def test_gzip_header_promising_more_than_the_file_holds(tmp_path, count, message):
    # 784,000 bytes cannot come out of a gzip file this small (deflate's best is 1032:1).
    path = write(tmp_path / "images", struct.pack(">IIII", 2051, count, 28, 28), gz=True)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=rf"images.gz: {message}"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000 + count * 784


def test_gzip_trailing_bytes_are_counted(tmp_path):
    labels = np.array([1, 2, 3], np.uint8)
    path = write(tmp_path / "labels", idx_bytes(labels) + b"\x00" * 5, gz=True)

    with pytest.raises(
        FormatError, match=r"8 bytes of label data, header promises 3 \(3\); 5 bytes"
    ):
        read_idx(path)


def test_read_idx_result_is_writable_and_native(tmp_path):
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    path = write(tmp_path / "ints", idx_bytes(values, type_code=0x0C), gz=True)

    loaded = read_idx(path)

    assert loaded.flags.writeable and loaded.dtype == np.dtype("=i4")
    np.testing.assert_array_equal(loaded, values)


@pytest.mark.parametrize("shape", [(0, 28, 28), (3, 0, 28)], ids=["no-images", "no-rows"])
def test_split_without_pixels(tmp_path, shape):
    # Found by the fuzz test: a valid IDX file holding no pixels made no Dataset.
    make_mnist(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros(shape, np.uint8)))
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(shape[0], np.uint8)))

    with pytest.raises(FormatError, match=r"t10k-images-idx3-ubyte: .* images, expected at least"):
        load_mnist(tmp_path)
