"""Fuzzing the MNIST readers: mutated IDX files, raw and gzipped, and folders of them.

Every case is a small file (or folder) made here from valid IDX files by a
seeded mutation -- magic and dimensions edited, bit flips, truncation,
splicing, trailing bytes, gzip streams damaged, concatenated or inflating
past their header -- and each must end in success or imgclf's own error
under the harness's limits (1 GiB of address space, 5 s a case).
"""

from __future__ import annotations

import gzip
import struct

import numpy as np

from tests.fuzz._harness import cases_per_reader, flip_bits, run_reader, write_cases

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Type codes of IDX, and one that is not.
TYPE_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]


def idx(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX encoding of ``array``."""
    header = struct.pack(f">I{array.ndim}I", (type_code << 8) | array.ndim, *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def seeds(rng: np.random.Generator) -> list[bytes]:
    """Valid IDX files: images, labels, other types and dimensions."""
    images = rng.integers(0, 256, (int(rng.integers(0, 5)), 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images), dtype=np.uint8)
    return [
        idx(images),
        idx(labels),
        idx(rng.normal(size=(3, 4)).astype(np.float32), 0x0D),
        idx(rng.integers(-5, 5, (2, 2, 2, 2)).astype(np.int16), 0x0B),
    ]


def edit_header(rng, data: bytes) -> bytes:
    """Magic (type code, number of dimensions, leading zeros) or one dimension edited."""
    out = bytearray(data)
    field = int(rng.integers(4))
    if field == 0:
        out[2] = TYPE_CODES[int(rng.integers(len(TYPE_CODES)))]
    elif field == 1:
        out[3] = int(rng.choice([0, 1, 2, 3, 4, 16, 255]))
    elif field == 2:
        out[int(rng.integers(2))] = int(rng.integers(1, 256))
    else:
        ndim = max(1, min(out[3], (len(out) - 4) // 4))
        at = 4 + 4 * int(rng.integers(ndim))
        value = int(rng.choice([0, 1, 27, 29, 60_000, 2**31 - 1, 2**32 - 1]))
        out[at : at + 4] = struct.pack(">I", value)
    return bytes(out)


def mutate_raw(rng, corpus: list[bytes]) -> bytes:
    """One or more seeded mutations of an IDX file in ``corpus``."""
    data = corpus[int(rng.integers(len(corpus)))]
    for _ in range(int(rng.choice([1, 1, 2, 3]))):
        kind = int(rng.integers(6))
        if kind == 0 and len(data) >= 8:
            data = edit_header(rng, data)
        elif kind == 1 and data:
            data = flip_bits(rng, data)
        elif kind == 2:
            data = data[: int(rng.integers(len(data) + 1))]
        elif kind == 3:  # trailing bytes, a few or many
            data += bytes(int(rng.choice([1, 7, 70_000])))
        elif kind == 4:  # spliced with another seed
            other = corpus[int(rng.integers(len(corpus)))]
            cut = int(rng.integers(len(data) + 1))
            data = data[:cut] + other[int(rng.integers(len(other) + 1)) :]
    return data


def gz_case(rng, data: bytes) -> bytes:
    """``data`` gzipped, then damaged, concatenated or made to inflate past its header."""
    packed = gzip.compress(data, compresslevel=int(rng.integers(1, 10)))
    kind = int(rng.integers(6))
    if kind == 0:
        return flip_bits(rng, packed)
    if kind == 1:
        return packed[: int(rng.integers(len(packed)))]
    if kind == 2:  # a bomb: zeros far past what the header promises
        return packed + gzip.compress(bytes(1 << 20), 9) * int(rng.integers(1, 200))
    if kind == 3:  # two members: valid gzip, the IDX twice
        return packed + packed
    if kind == 4:  # header fields (flags, method) edited
        out = bytearray(packed)
        out[int(rng.integers(2, 10))] = int(rng.integers(256))
        return bytes(out)
    return packed


def idx_case(rng, corpus: list[bytes]) -> bytes:
    data = mutate_raw(rng, corpus) if rng.random() < 0.8 else corpus[int(rng.integers(4))]
    return gz_case(rng, data) if rng.random() < 0.5 else data


def test_fuzz_idx(tmp_path):
    rng = np.random.default_rng(20240614)
    corpus = seeds(rng)
    paths = write_cases(tmp_path, lambda: idx_case(rng, corpus))

    report = run_reader("idx", paths)  # prints report.summary()

    assert report.failures == []
    assert report.count("ok") > 0 and report.count("error") > 0


def folder_case(rng, folder) -> None:
    """The four MNIST files in ``folder``, one of them (or a pairing) damaged."""
    folder.mkdir()
    gz = rng.random() < 0.5
    counts = {"train": int(rng.integers(0, 6)), "test": int(rng.integers(0, 4))}
    files = {}
    for split, (images_name, labels_name) in FILES.items():
        n = counts[split]
        files[images_name] = idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        files[labels_name] = idx(rng.integers(0, 10, n, dtype=np.uint8))
    names = list(files)
    victim = names[int(rng.integers(len(names)))]
    kind = int(rng.integers(5))
    if kind == 0:
        files[victim] = mutate_raw(rng, [files[victim]])
    elif kind == 1:  # labels out of range, or a count that differs from the images'
        labels = rng.integers(0, 256, int(rng.integers(0, 6)), dtype=np.uint8)
        files[names[1]] = idx(labels)
    elif kind == 2:
        del files[victim]
    elif kind == 3:  # another file's contents under this name
        files[victim] = files[names[int(rng.integers(len(names)))]]
    for name, data in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(
                gz_case(rng, data) if name == victim else gzip.compress(data)
            )
        else:
            (folder / name).write_bytes(data)


def test_fuzz_mnist_folder(tmp_path):
    rng = np.random.default_rng(20240615)
    paths = []
    for i in range(cases_per_reader(200)):
        folder = tmp_path / f"case_{i:05d}"
        folder_case(rng, folder)
        paths.append(folder)

    report = run_reader("mnist_folder", paths)  # prints report.summary()

    assert report.failures == []
    assert report.count("ok") > 0 and report.count("error") > 0
