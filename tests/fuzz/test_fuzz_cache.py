"""Fuzz the decoded-folder cache reader (``cache.read_entry``).

Seeds are real entries written by ``cache.write_entry`` under the digest the worker
asks for (``"0" * 64``), so that a mutation which leaves the digest alone reaches the
array-reading code. Mutations: bit flips, truncation, the header's length field set to
wrong values, array specs (dtype, shape, offset) rewritten, splices between entries.
Every case must end in a result or a miss (None), never an exception, under the
harness's 1 GiB cap and 5 s timer.
"""

import json
import random
from pathlib import Path

import numpy as np

from imgclf.datasets import cache
from tests.fuzz._harness import cases_per_reader, run_reader

DIGEST = "0" * 64  # what the worker's "cache_entry" reader asks for


def seeds(folder: Path) -> list[bytes]:
    rng = np.random.default_rng(0)
    made = []
    for i, (n, shape) in enumerate([(3, (4, 4, 3)), (5, (2, 3, 1)), (1, (8, 8, 3))]):
        arrays = {
            "train_images": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            "train_labels": rng.integers(0, 2, n).astype(np.int64),
            "test_images": rng.integers(0, 256, (1, *shape), dtype=np.uint8),
            "test_labels": np.zeros(1, np.int64),
        }
        header = {"splits": {s: {"classes": ["a", "b"], "skipped": []} for s in ("train", "test")}}
        path = folder / f"seed{i}.npz"
        cache.write_entry(path, DIGEST, header, arrays)
        made.append(path.read_bytes())
    return made


WEIRD = [0, -1, 1, 2**31, 2**63, 10**12, 1.5, True, None, "4", [], {}, [2**40, 2**40]]


def rewrite_spec(rng: random.Random, data: bytes) -> bytes:
    """Change one field of one array's spec in the JSON header, keeping the layout valid."""
    length = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16 : 16 + length])
    spec = header["arrays"][rng.choice(sorted(header["arrays"]))]
    field = rng.choice(["dtype", "shape", "offset"])
    if field == "dtype":
        spec["dtype"] = rng.choice(["|u1", "<i8", "<f4", "|O", "<f8", ">i8", "V8", 3])
    elif field == "shape" and rng.random() < 0.5:
        spec["shape"][rng.randrange(len(spec["shape"]))] = rng.choice(WEIRD)
    else:
        spec[field] = rng.choice(WEIRD)
    blob = json.dumps(header).encode()
    head = data[:8] + len(blob).to_bytes(8, "little") + blob
    start = cache._aligned(16 + length)
    return head + bytes(cache._aligned(len(head)) - len(head)) + data[start:]


def mutate(rng: random.Random, entries: list[bytes]) -> bytes:
    data = bytearray(rng.choice(entries))
    kind = rng.choice(["flip", "truncate", "length", "spec", "spec", "splice"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)) :]
    elif kind == "length":
        value = rng.choice([0, 1, 2**32, 2**63 - 1, 2**64 - 1, rng.randrange(1, 4096)])
        data[8:16] = value.to_bytes(8, "little")
    elif kind == "spec":
        data = bytearray(rewrite_spec(rng, bytes(data)))
    else:
        other = rng.choice(entries)
        start, at = rng.randrange(len(other)), rng.randrange(len(data))
        data[at : at + rng.randint(0, 100)] = other[start : start + rng.randint(1, 100)]
    return bytes(data)


def test_fuzz_cache_entries(tmp_path: Path):
    rng = random.Random(9)
    entries = seeds(tmp_path)
    paths = sorted(tmp_path.glob("seed*.npz"))
    for i in range(cases_per_reader(200)):
        path = tmp_path / f"case{i:05d}.npz"
        path.write_bytes(mutate(rng, entries))
        paths.append(path)
    report = run_reader("cache_entry", paths)
    assert report.failures == []
    assert report.count("ok") == len(paths)  # every damaged entry is a miss, not an error
