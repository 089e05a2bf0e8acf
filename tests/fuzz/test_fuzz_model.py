"""Fuzz the model-file reader: seeded mutants of small valid models, each under limits.

Every mutant must load or be refused with imgclf's own error, within the
harness's memory cap and time limit. Header and array mutations recompute
the checksum (as a forger would), so that the schema, not the checksum, is
what stops them.
"""

from __future__ import annotations

import json
import random
import zipfile
from io import BytesIO

import numpy as np
import pytest

from imgclf import io
from imgclf.datasets import load_digits
from imgclf.experiments import make_model
from imgclf.linear import linear_pipeline
from imgclf.neighbors import KNNClassifier
from tests.fuzz._harness import cases_per_reader, run_reader

SEED = 12


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[dict[str, bytes]]:
    """Valid model files (knn, linear, net pipeline) as {member name: bytes}."""
    train = load_digits()["train"]
    models = {
        "knn": KNNClassifier(k=3, metric="l1").fit(train.images, train.labels),
        "linear": linear_pipeline(loss="softmax", epochs=1, seed=0).fit(train.images, train.labels),
        "net": make_model("net", hidden=8, epochs=1).fit(train.X, train.labels),
    }
    folder = tmp_path_factory.mktemp("seeds")
    out = []
    for name, model in models.items():
        path = io.save(
            model,
            folder / f"{name}.imgclf",
            model_type=name,
            class_names=train.classes,
            image_shape=(8, 8, 1),
        )
        assert io.load(path).model_type == name  # the seeds themselves are valid
        with zipfile.ZipFile(path) as archive:
            out.append({n: archive.read(n) for n in archive.namelist()})
    return out


# --- building files ----------------------------------------------------------------------


def zip_bytes(members: list[tuple[str, bytes]], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(descr: str, fortran: bool, shape) -> bytes:
    """A version 1.0 .npy header saying anything at all."""
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


def split(members: dict[str, bytes]) -> tuple[dict, dict[str, np.ndarray]]:
    arrays = {n[:-4]: np.load(BytesIO(d)) for n, d in members.items()}
    return json.loads(arrays.pop("__header__").tobytes()), arrays


def assemble(header: dict, arrays: dict[str, np.ndarray], rng: random.Random) -> bytes:
    """A model file of ``header`` and ``arrays``, checksum recomputed."""
    header = dict(header)
    header["checksum"] = io._checksum(header, arrays)
    blob = np.frombuffer(json.dumps(header).encode(), np.uint8)
    members = [("__header__.npy", npy(blob))] + [(f"{k}.npy", npy(a)) for k, a in arrays.items()]
    compression = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
    return zip_bytes(members, compression)


# --- mutations ---------------------------------------------------------------------------

HOSTILE_VALUES = [
    None,
    True,
    -1,
    0,
    1,
    3,
    10**12,
    10**30,
    -(10**18),
    1.5,
    -0.0,
    1e300,
    "",
    "x",
    "knn",
    "std",
    "os.system",
    "KNNClassifier",
    "LinearClassifier",
    "a__b",
    [],
    {},
    [10**6, 10**6, 3],
    [8, 8, 1],
    [8, 8],
    ["0", "1"],
    [0] * 20,
    {"n_features_in_": 10**9},
    {"__class__": 1},
    {"predict": 1},
    [[[[[[[[[[1]]]]]]]]]],
]


def _containers(node, path=()):
    """Every (container, key) pair inside a JSON value."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _containers(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _containers(value, (*path, index))


def mutate_header(members, rng):
    header, arrays = split(members)
    header.pop("checksum")
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(list(_containers(header)))
        action = rng.random()
        if action < 0.6:
            container[key] = rng.choice(HOSTILE_VALUES)
        elif action < 0.75 and isinstance(container, dict):
            del container[key]
        elif action < 0.85 and isinstance(container, dict):
            container[rng.choice(["extra", "signature", "n_iter_", "_index", "k"])] = 1
        elif action < 0.95:
            container[key] = [container[key]]  # one level deeper
        elif isinstance(header.get("class_names"), list):
            header["class_names"] = header["class_names"][: rng.randint(0, 12)]
    return assemble(header, arrays, rng)


DESCRS = ["|O", "<U0", "|V8", "|S3", ">f8", "<f8", "<f4", "<f2", "<i8", "|u1", "|b1", "<c16"]


def mutate_npy_header(members, rng):
    header, arrays = split(members)
    header.pop("checksum")
    name = rng.choice(list(arrays))
    array = arrays[name]
    data = np.ascontiguousarray(array).tobytes()
    descr = rng.choice(DESCRS + [array.dtype.str] * 4)
    shape = rng.choice(
        [
            array.shape,
            array.shape[::-1],
            (10**12,),
            (len(data),),
            (-1,),
            (2**62, 2**62),
            (),
            (1, 1, 1, 1, 1),
            tuple(reversed(array.shape)) + (1,),
        ]
    )
    fortran = rng.random() < 0.3
    try:  # a consistent reinterpretation: a forger would recompute the checksum for it
        forged = np.frombuffer(data, np.dtype(descr)).reshape(shape, order="F" if fortran else "C")
        arrays[name] = forged
        return assemble(header, arrays, rng)
    except (ValueError, TypeError):  # inconsistent: write the lying header as it is
        out = dict(members)
        out[f"{name}.npy"] = npy_header(descr, fortran, shape) + data
        return zip_bytes(list(out.items()))


def swap_members(members, rng):
    header, arrays = split(members)
    header.pop("checksum")
    names = list(arrays)
    action = rng.randrange(4)
    if action == 0 and len(names) > 1:  # two arrays trade places
        a, b = rng.sample(names, 2)
        arrays[a], arrays[b] = arrays[b], arrays[a]
    elif action == 1:  # an array goes missing
        del arrays[rng.choice(names)]
    elif action == 2:  # an array appears under another name
        arrays[rng.choice(["model/x_", "other/classes_", "clf", "net/W3_"])] = arrays[names[0]]
    else:  # the raw header bytes become an array, or a member is duplicated
        raw = list(members.items())
        raw.append(rng.choice(raw))
        with pytest.warns(UserWarning):
            return zip_bytes(raw)
    return assemble(header, arrays, rng)


def flip_bytes(members, rng):
    data = bytearray(zip_bytes(list(members.items())))
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def truncate(members, rng):
    data = zip_bytes(list(members.items()))
    return data[: rng.randrange(len(data))]


MUTATIONS = [mutate_header, mutate_header, mutate_npy_header, swap_members, flip_bytes, truncate]


def test_model_reader_survives_mutants(seeds, tmp_path):
    n = cases_per_reader(300)
    paths = []
    for case in range(n):
        rng = random.Random(SEED * 1_000_003 + case)
        mutation = MUTATIONS[case % len(MUTATIONS)]
        path = tmp_path / f"{case:05d}-{mutation.__name__}.imgclf"
        path.write_bytes(mutation(seeds[case % len(seeds)], rng))
        paths.append(path)
    report = run_reader("model", paths)
    print(report.summary("model"))
    assert report.failures == []
    assert report.count("error") > n // 2  # most mutants are refused, not loaded
