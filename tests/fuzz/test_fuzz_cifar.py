"""Fuzzing the CIFAR readers: mutated pickles and mutated ``.tar.gz`` archives.

Every case is a small file made here from a valid CIFAR-like batch by a
seeded mutation -- bit flips, truncation, splicing, length fields set to
extreme values, opcodes deleted, repeated, swapped or replaced, memo
references to shared and deeply nested values, foreign globals -- and each
must end in success or imgclf's own error under the harness's limits
(1 GiB of address space, 5 s a case).
"""

from __future__ import annotations

import bz2
import gzip
import pickle
import pickletools
import struct
import tarfile

import numpy as np

from tests.fuzz._harness import flip_bits, run_reader, write_cases

ROWS = 2
NAMES = [b"airplane", b"automobile", b"bird"]
# Opcodes whose argument starts with a length: (byte width, struct format) of that length.
_LENGTHS = {
    "SHORT_BINSTRING": "<B",
    "SHORT_BINBYTES": "<B",
    "SHORT_BINUNICODE": "<B",
    "BINSTRING": "<i",
    "BINBYTES": "<I",
    "BINUNICODE": "<I",
    "BINUNICODE8": "<Q",
    "BINBYTES8": "<Q",
    "BYTEARRAY8": "<Q",
    "FRAME": "<Q",
    "LONG1": "<B",
    "LONG4": "<i",
    "BINPUT": "<B",
    "LONG_BINPUT": "<I",
    "BINGET": "<B",
    "LONG_BINGET": "<I",
}


def batch(rng: np.random.Generator, rows: int = ROWS) -> dict:
    """A CIFAR-10 batch of ``rows`` random images, as the official files hold it."""
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in rng.integers(0, len(NAMES), rows)],
        b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
        b"filenames": [f"image_{i}.png".encode() for i in range(rows)],
    }


def seeds(rng: np.random.Generator) -> list[bytes]:
    """Valid pickles to mutate: protocols 2 (as the official files) to 5, and a meta file."""
    small = batch(rng)
    return [
        pickle.dumps(small, protocol=2),
        pickle.dumps(small, protocol=4),
        pickle.dumps(small, protocol=5),
        pickle.dumps({b"label_names": NAMES, b"num_cases_per_batch": ROWS}, protocol=2),
    ]


# --- byte-level mutations ---------------------------------------------------------


def truncate(rng, data: bytes) -> bytes:
    return data[: int(rng.integers(len(data)))]


def splice(rng, data: bytes, other: bytes) -> bytes:
    i, j = sorted(int(v) for v in rng.integers(0, len(data), 2))
    k = int(rng.integers(len(other)))
    return data[:i] + other[k : k + int(rng.integers(1, 200))] + data[j:]


def extreme(rng, fmt: str) -> int:
    """A value for a length field: zero, small, the largest it holds, or random."""
    top = (1 << (8 * struct.calcsize(fmt) - (1 if fmt[1].islower() else 0))) - 1
    return int(rng.choice([0, 1, 2, 255, top, top // 2, int(rng.integers(0, min(top, 1 << 40)))]))


# --- opcode-level mutations -------------------------------------------------------


def ops(data: bytes) -> list[tuple[pickletools.OpcodeInfo, int, bytes]]:
    """``(opcode, position, its bytes)`` of each opcode of a valid pickle."""
    found = list(pickletools.genops(data))
    ends = [pos for _, _, pos in found[1:]] + [len(data)]
    return [(op, pos, data[pos:end]) for (op, _, pos), end in zip(found, ends, strict=True)]


def edit_length(rng, data: bytes) -> bytes:
    """One length (or memo index) field set to an extreme value."""
    fields = [(op, pos) for op, pos, _ in ops(data) if op.name in _LENGTHS]
    op, pos = fields[int(rng.integers(len(fields)))]
    fmt = _LENGTHS[op.name]
    value = extreme(rng, fmt)
    return data[: pos + 1] + struct.pack(fmt, value) + data[pos + 1 + struct.calcsize(fmt) :]


def edit_opcodes(rng, data: bytes) -> bytes:
    """Delete, repeat, swap or replace opcodes of ``data``."""
    pieces = [piece for _, _, piece in ops(data)]
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(pieces)))
        kind = int(rng.integers(4))
        if kind == 0:
            del pieces[i]
        elif kind == 1:
            pieces[i:i] = pieces[i : i + int(rng.integers(1, 6))] * int(rng.integers(2, 50))
        elif kind == 2:
            j = int(rng.integers(len(pieces)))
            pieces[i], pieces[j] = pieces[j], pieces[i]
        else:
            code = pickletools.opcodes[int(rng.integers(len(pickletools.opcodes)))].code
            pieces[i] = code.encode("latin1") + pieces[i][1:]
        if not pieces:
            break
    return b"".join(pieces)


def shared_structure(rng) -> bytes:
    """Values shared through the memo and nested deep: tuples, lists, dict keys, cycles."""
    kind = rng.choice(["tuple", "list", "dict", "key", "cycle", "array"])
    if kind == "array":
        return array_many_times(rng)
    levels = int(rng.integers(5, 60))
    width = int(rng.integers(2, 6))
    out = [b"\x80\x02", b"K\x00q\x00"]  # memo 0: a leaf
    for level in range(1, levels + 1):
        get = b"h" + bytes([level - 1])  # the level below, through the memo
        if kind in ("tuple", "key"):
            out.append(b"(" + get * width + b"t")
        elif kind == "list":
            out.append(b"](" + get * width + b"e")
        elif kind == "dict":
            out.append(b"}(" + b"".join(b"K" + bytes([k]) + get for k in range(width)) + b"u")
        else:  # cycle: lists, the first of which will hold itself
            out.append(b"](" + get * width + b"e")
        out.append(b"q" + bytes([level % 256]))
    if kind == "key":
        out.append(b"}" + b"h" + bytes([levels % 256]) + b"K\x01s")
    elif kind == "cycle":
        out.append(b"h\x01h\x01a")
    return b"".join(out) + b"."


def array_many_times(rng) -> bytes:
    """Many arrays built from one memoised buffer: more bytes out than the file holds."""
    data = bytes(int(rng.integers(1, 5000)))

    class Shared:
        def __reduce__(self):
            state = (1, (len(data),), np.dtype(np.uint8), False, data)
            return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)

    return pickle.dumps([Shared() for _ in range(int(rng.integers(1, 300)))], protocol=2)


def foreign_global(rng, data: bytes) -> bytes:
    swaps = [
        (b"numpy", b"os\x00\x00\x00"),
        (b"_reconstruct", b"system\x00\x00\x00\x00\x00\x00"),
        (b"numpy.core.multiarray", b"builtins\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
        (b"dtype", b"eval\x00"),
    ]
    old, new = swaps[int(rng.integers(len(swaps)))]
    return data.replace(old, new[: len(old)].rstrip(b"\x00"), 1)


def mutate(rng, corpus: list[bytes]) -> bytes:
    """One seeded mutation of a seed in ``corpus`` (sometimes several in a row)."""
    data = corpus[int(rng.integers(len(corpus)))]
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        if not data:
            break
        kind = int(rng.integers(8))
        try:
            if kind == 0:
                data = flip_bits(rng, data)
            elif kind == 1:
                data = truncate(rng, data)
            elif kind == 2:
                data = splice(rng, data, corpus[int(rng.integers(len(corpus)))])
            elif kind == 3:
                data = edit_length(rng, data)
            elif kind == 4:
                data = edit_opcodes(rng, data)
            elif kind == 5:
                data = shared_structure(rng)
            elif kind == 6:
                data = foreign_global(rng, data)
            else:
                data = data  # a valid seed as it is
        except (ValueError, IndexError):
            data = flip_bits(rng, data)  # an earlier mutation left no valid opcodes to edit
    return data


def test_fuzz_cifar_pickle(tmp_path):
    rng = np.random.default_rng(20240612)
    corpus = seeds(rng)
    paths = write_cases(tmp_path, lambda: mutate(rng, corpus), suffix=".pkl")

    report = run_reader("cifar_pickle", paths)  # prints report.summary()

    assert report.failures == []
    assert report.count("ok") > 0 and report.count("error") > 0  # both kinds were reached


# --- archives ----------------------------------------------------------------------


def archive_members(rng) -> list[tuple[str, bytes]]:
    """The members of a small valid CIFAR-10 archive, in the official order."""
    folder = "cifar-10-batches-py"
    members = [(f"{folder}/batches.meta", pickle.dumps({b"label_names": NAMES}, protocol=2))]
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        members.append((f"{folder}/{name}", pickle.dumps(batch(rng, 1), protocol=2)))
    members.append((f"{folder}/readme.html", b"<html></html>"))
    return members


def tar_bytes(
    members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT, end: bool = True
) -> bytes:
    """A tar archive of ``members``; without its end marker if not ``end``."""
    out = []
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out += [info.tobuf(format=fmt), data, bytes(-len(data) % 512)]
    return b"".join(out) + (bytes(1024) if end else b"")


def mutate_header(rng, tar: bytes) -> bytes:
    """One field of one 512-byte tar header set to something else."""
    headers = [i for i in range(0, len(tar) - 512, 512) if tar[i + 257 : i + 262] == b"ustar"]
    at = headers[int(rng.integers(len(headers)))]
    fields = [(0, 100), (100, 8), (124, 12), (148, 8), (156, 1), (157, 100), (345, 155)]
    start, width = fields[int(rng.integers(len(fields)))]
    choices = [
        b"7" * (width - 1),  # the largest octal value
        b"\x80" + b"\xff" * (width - 1),  # a base-256 number
        bytes(rng.integers(0, 256, width, dtype=np.uint8)),
        b"L" if width == 1 else b"././@LongLink".ljust(width, b"\x00")[:width],
        b"x" if width == 1 else b"0" * width,
    ]
    new = choices[int(rng.integers(len(choices)))]
    return tar[: at + start] + new + tar[at + start + width :]


def archive_case(rng) -> bytes:
    """A mutated CIFAR-10 archive: member, header, stream or wrapper damaged."""
    members = archive_members(rng)
    kind = int(rng.integers(7))
    if kind == 0:  # a member's pickle mutated
        i = int(rng.integers(len(members)))
        name, data = members[i]
        members[i] = (name, mutate(rng, [data]))
    elif kind == 1:  # members dropped or repeated
        i = int(rng.integers(len(members)))
        members = members[:i] + members[i + 1 :] if rng.random() < 0.5 else members + members[i:]
    fmt = [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT][int(rng.integers(3))]
    tar = tar_bytes(members, fmt)
    if kind == 2:
        tar = mutate_header(rng, tar)
    elif kind == 3:  # a small bomb: a header declaring much, then zeros
        tar = tar_bytes(members[: int(rng.integers(len(members)))], end=False) + bomb_header(rng)
    packed = gzip.compress(tar, compresslevel=1)
    if kind == 3:
        packed += gzip.compress(bytes(1 << 20), compresslevel=9) * int(rng.integers(1, 400))
    elif kind == 4:
        packed = flip_bits(rng, packed)
    elif kind == 5:
        packed = truncate(rng, packed)
    elif kind == 6:  # another wrapper: none, gzip twice, bzip2
        packed = [tar, gzip.compress(packed), bz2.compress(tar)][int(rng.integers(3))]
    return packed


def bomb_header(rng) -> bytes:
    name = ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/x", "././@LongLink"]
    info = tarfile.TarInfo(name[int(rng.integers(len(name)))])
    info.size = int(rng.choice([1 << 30, 3 << 30, 1 << 40, 40 << 20]))
    kinds = [tarfile.REGTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.DIRTYPE]
    info.type = kinds[int(rng.integers(len(kinds)))]
    return info.tobuf(format=tarfile.GNU_FORMAT)


def test_fuzz_cifar_archive(tmp_path):
    rng = np.random.default_rng(20240613)
    paths = write_cases(tmp_path, lambda: archive_case(rng), suffix=".tar.gz")

    report = run_reader("cifar_archive", paths)  # prints report.summary()

    assert report.failures == []
    assert report.count("ok") > 0 and report.count("error") > 0
