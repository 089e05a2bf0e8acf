"""Model files: round trips, and clear errors for damaged or foreign files."""

import json
import os
import zipfile

import numpy as np
import pytest

from imgclf import io
from imgclf.datasets import load_digits
from imgclf.errors import ModelFileError, SigningKeyError
from imgclf.experiments import make_model
from imgclf.linear import linear_pipeline
from imgclf.neighbors import KNNClassifier


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# One model of every type the command line trains, fitted on demand.
FITTERS = {
    "knn": lambda t: KNNClassifier(k=3, metric="l1", weights="distance").fit(t.images, t.labels),
    "linear": lambda t: linear_pipeline(loss="svm", epochs=3, seed=0).fit(t.images, t.labels),
    "net": lambda t: make_model("net", hidden=20, epochs=3).fit(t.X, t.labels),
    "knn+features": lambda t: make_model(
        "knn", features=["pixels"], image_shape=(8, 8, 1), k=3
    ).fit(t.X, t.labels),
}


@pytest.fixture(params=sorted(FITTERS))
def saved(request, digits, tmp_path):
    model = FITTERS[request.param](digits["train"])
    path = io.save(
        model,
        tmp_path / "model.imgclf",
        model_type=request.param,
        class_names=digits["train"].classes,
        image_shape=(8, 8, 1),
    )
    return model, path


def scores(model, X):
    """Class scores: the linear model's decision function, k-NN's vote shares."""
    return (
        model.decision_function(X)
        if hasattr(model, "decision_function")
        else model.predict_proba(X)
    )


def test_round_trip_gives_identical_predictions(saved, digits):
    model, path = saved
    loaded = io.load(path)
    test = digits["test"].images
    np.testing.assert_array_equal(loaded.model.predict(test), model.predict(test))
    np.testing.assert_array_equal(scores(loaded.model, test), scores(model, test))
    assert loaded.class_names == list("0123456789") and loaded.image_shape == (8, 8, 1)


def test_file_holds_no_pickle(saved):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            assert data[:6] == b"\x93NUMPY"
            assert b"'descr': '|O'" not in data[:200]  # no object arrays (which need pickle)


def test_truncated_file_is_refused(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ModelFileError, match="model.imgclf"):
        io.load(path)


def rewrite(path, change):
    """Load every array of the file, let ``change`` edit them, write the file back."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    with open(path, "wb") as out:
        np.savez(out, **arrays)


def edit_header(arrays, edit):
    header = json.loads(arrays["__header__"].tobytes())
    edit(header)
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


def test_tampered_array_fails_the_checksum(saved):
    _, path = saved

    def flip_a_byte(arrays):
        name = next(n for n in arrays if n != "__header__")
        arrays[name] = arrays[name].copy()
        arrays[name].reshape(-1).view(np.uint8)[-1] ^= 0xFF

    rewrite(path, flip_a_byte)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        io.load(path)


def test_tampered_parameters_fail_the_checksum(saved):
    _, path = saved
    rewrite(
        path,
        lambda m: edit_header(
            m,
            lambda h: h["steps"][-1]["params"].update(
                {"k": 1} if h["model_type"].startswith("knn") else {"reg": 123.0}
            ),
        ),
    )
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        io.load(path)


def test_unknown_version_is_named(saved):
    _, path = saved
    rewrite(path, lambda m: edit_header(m, lambda h: h.update(format_version=99)))
    with pytest.raises(ModelFileError, match="format version 99; this imgclf .* reads version 1"):
        io.load(path)


def test_unknown_class_is_refused_without_instantiating(saved):
    _, path = saved

    def evil(arrays):
        def swap_class(header):
            header["steps"][0]["class"] = "os.system"
            header.pop("checksum")
            body = {k: v for k, v in arrays.items() if k != "__header__"}
            header["checksum"] = io._checksum(header, body)  # a forger can recompute it

        edit_header(arrays, swap_class)

    rewrite(path, evil)
    with pytest.raises(ModelFileError, match="unknown estimator class 'os.system'"):
        io.load(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04 broken zip"])
def test_garbage_files(tmp_path, content):
    path = tmp_path / "junk.imgclf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="junk.imgclf"):
        io.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        io.load(tmp_path / "nope.imgclf")


def test_failed_save_leaves_no_file(tmp_path, digits):
    path = tmp_path / "model.imgclf"

    class Unfit:
        def get_params(self, deep=False):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.save(Unfit(), path, model_type="knn")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_archive_is_never_unpickled(tmp_path):
    import pickle

    path = tmp_path / "evil.imgclf"
    path.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        io.load(path)


# --- hostile files (issue 12) ------------------------------------------------------------

KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv(io.KEY_ENV, raising=False)
    monkeypatch.delenv(io.MAX_MODEL_BYTES_ENV, raising=False)


@pytest.fixture(scope="module")
def knn_file(digits, tmp_path_factory):
    """A valid small k-NN model file (read it, never change it: copy first)."""
    model = FITTERS["knn"](digits["train"])
    path = tmp_path_factory.mktemp("knn") / "knn.imgclf"
    return io.save(
        model, path, model_type="knn", class_names=list("0123456789"), image_shape=(8, 8, 1)
    )


@pytest.fixture
def knn(knn_file, tmp_path):
    path = tmp_path / "model.imgclf"
    path.write_bytes(knn_file.read_bytes())
    return path


def forge(path, header_edit=None, arrays_edit=None, key=None):
    """Edit header and arrays as a forger would, with a recomputed checksum (and signature)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop("__header__").tobytes())
    if arrays_edit:
        arrays_edit(arrays)
    if header_edit:
        header_edit(header)
    header["checksum"] = io._checksum(header, arrays)
    if key is not None:
        header["signature"] = io._signature(key, header, arrays)
    write_npz(path, {"__header__.npy": npy_bytes(json.dumps(header).encode())}, arrays)


def npy_bytes(data: bytes) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    np.save(buffer, np.frombuffer(data, np.uint8))
    return buffer.getvalue()


def write_npz(path, raw_members: dict, arrays=None, compression=zipfile.ZIP_STORED):
    """A zip of members given as bytes (any content) plus arrays saved as .npy."""
    from io import BytesIO

    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in raw_members.items():
            archive.writestr(name, data)
        for name, array in (arrays or {}).items():
            buffer = BytesIO()
            np.save(buffer, array, allow_pickle=array.dtype.hasobject)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def raw_header(path, text: str):
    """Replace the header member by ``text`` as given (no checksum recomputed)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if name != "__header__"}
    write_npz(path, {"__header__.npy": npy_bytes(text.encode())}, arrays)


def refused(path, match, **kwargs):
    with pytest.raises(ModelFileError, match=match) as info:
        io.load(path, **kwargs)
    assert str(path) in str(info.value)
    return str(info.value)


# Item 2: bombs and sizes


def test_member_inflating_beyond_its_npy_header_is_refused_unread(knn):
    zeros = b"\0" * (64 << 20)  # 64 MiB inflated, 64 KiB in the file
    forged = np.lib.format.header_data_from_array_1_0(np.zeros(10, np.uint8))
    from io import BytesIO

    head = BytesIO()
    np.lib.format.write_array_header_1_0(head, forged)
    with np.load(knn) as archive:
        arrays = {n: archive[n] for n in archive.files}
    write_npz(
        knn,
        {"bomb.npy": head.getvalue() + zeros},
        arrays,
        compression=zipfile.ZIP_DEFLATED,
    )
    refused(knn, "declares 10 bytes of uint8 .* but holds 67,108,864")


def test_model_size_is_bounded_and_the_bound_overridable(knn, monkeypatch):
    refused(knn, "maximum model size", max_bytes=50_000)
    monkeypatch.setenv(io.MAX_MODEL_BYTES_ENV, "50000")
    refused(knn, "maximum model size")
    assert io.load(knn, max_bytes=10**7).model_type == "knn"


def test_member_whose_zip_size_lies_is_never_inflated_past_it(knn):
    with np.load(knn) as archive:
        arrays = {n: archive[n] for n in archive.files}
    write_npz(knn, {}, arrays, compression=zipfile.ZIP_DEFLATED)
    data = knn.read_bytes()
    # both "uncompressed size" fields of _fit_X (local header, central directory) say less
    size = (92_096).to_bytes(4, "little")
    assert data.count(size) == 2
    knn.write_bytes(data.replace(size, (1_000).to_bytes(4, "little")))
    refused(knn, "model.imgclf")


def test_deflated_models_load(knn):
    with np.load(knn) as archive:
        arrays = {n: archive[n] for n in archive.files}
    with open(knn, "wb") as out:
        np.savez_compressed(out, **arrays)
    assert io.load(knn).class_names == list("0123456789")


# Item 3: forged sizes, numbers and nesting


def test_forged_image_shape_is_refused_before_anything_is_allocated(knn):
    forge(knn, lambda h: h.update(image_shape=[10**6, 10**6, 3]))
    refused(knn, r"image_shape is \[1000000, 1000000, 3\]; expected null or \[H, W, C\]")


def test_image_shape_must_match_the_model(knn):
    forge(knn, lambda h: h.update(image_shape=[8, 8, 3]))
    refused(knn, r"image_shape is \[8, 8, 3\]; expected H\*W\*C = 64")


def test_npy_member_declaring_a_trillion_elements(knn):
    from io import BytesIO

    head = BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    with np.load(knn) as archive:
        arrays = {n: archive[n] for n in archive.files if n != "model/_fit_X"}
    write_npz(knn, {"model/_fit_X.npy": head.getvalue() + b"\0" * 64}, arrays)
    refused(knn, "declares 8,000,000,000,000 bytes")


def test_deeply_nested_header(knn):
    raw_header(knn, "[" * 100_000 + "]" * 100_000)
    refused(knn, "corrupt header .*nest 100000 deep")


def test_huge_number_in_header_names_the_file(knn):
    raw_header(knn, '{"format": "imgclf-model", "format_version": 1' + "0" * 5000 + "}")
    refused(knn, "corrupt header .*5,001 digits")


def test_oversized_header(knn):
    raw_header(knn, " " * (io.MAX_HEADER_BYTES + 1))
    refused(knn, "header of 1,048,577 bytes")


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": 1e999}', '{"a": 1, "a": 2}', "\xff"])
def test_header_json_oddities(knn, text):
    raw_header(knn, text)
    refused(knn, "corrupt header")


# Item 7: malformed files of every kind


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h.pop("steps"), r"header fields missing \['steps'\]"),
        (lambda h: h.update(extra=1), r"unknown \['extra'\]"),
        (lambda h: h.update(steps="knn"), "steps is 'knn'; expected a list"),
        (lambda h: h.update(steps=[]), "expected a list of 1 to"),
        (lambda h: h.update(class_names=5), "class_names is 5"),
        (lambda h: h.update(class_names=list("012")), "class_names is '3 names'; expected 10"),
        (lambda h: h.update(model_type=["knn"]), "model_type"),
        (lambda h: h.update(pipeline="yes"), "pipeline is 'yes'"),
        (lambda h: h.update(format_version=True), "format version True"),
        (lambda h: h["steps"][0].update(params={"k": 3}), r"lacks \[.*'metric'"),
        (lambda h: h["steps"][0]["params"].update(k="3"), "cannot be rebuilt: ValueError: k must"),
        (lambda h: h["steps"][0]["params"].update(k=0), "k must be >= 1"),
        (lambda h: h["steps"][0]["params"].update(k=5000), "k=5000; expected .* k <= rows"),
        (lambda h: h["steps"][0]["params"].update(metric={"a": 1}), "params.metric"),
        (lambda h: h["steps"][0]["params"].update(working_memory=10**15), "working_memory"),
        (lambda h: h["steps"][0].update(name="a__b"), "name is 'a__b'"),
        (lambda h: h["steps"][0].update(state={"n_features_in_": 65}), "shape .*expected"),
        (lambda h: h["steps"][0].update(state={"predict": 1}), "fitted attribute names"),
        (lambda h: h["steps"][0].update(state={"__class__": 1}), "fitted attribute names"),
        (lambda h: h["steps"][0].update(state={}), "n_features_in_ is None"),
        (
            lambda h: h["steps"][0].update({"class": "MeanImage", "params": {"scale": None}}),
            "must be a classifier",
        ),
        (lambda h: h["steps"][0].update({"class": "LinearClassifier"}), "lacks"),
        (
            lambda h: h.update(pipeline=True, steps=h["steps"] * 2),
            "not the last step",
        ),
        (lambda h: h.update(signature="md5:x"), "signature"),
    ],
)
def test_forged_header_with_recomputed_checksum(knn, edit, match):
    forge(knn, edit)
    refused(knn, match)


def test_arrays_of_another_estimator(knn, digits, tmp_path):
    linear = io.save(FITTERS["linear"](digits["train"]), tmp_path / "lin.imgclf", model_type="x")
    with np.load(linear) as archive:
        theirs = {n: archive[n] for n in archive.files if n != "__header__"}

    def swap(arrays):
        arrays.clear()
        arrays.update(theirs)

    forge(knn, arrays_edit=swap)
    refused(knn, "arrays of no step|arrays missing")


def test_out_of_range_labels(knn):
    def label_out_of_range(arrays):
        arrays["model/_y"] = arrays["model/_y"].copy()
        arrays["model/_y"][7] = 10

    forge(knn, arrays_edit=label_out_of_range)
    refused(knn, r"_y holds label indices 0..10; expected 0..9")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda a: a.update({"model/_y": a["model/_y"].astype(np.float32)}), "_y is float32"),
        (lambda a: a.update({"model/_fit_X": a["model/_fit_X"][:, :10]}), "_fit_X has shape"),
        (lambda a: a.update({"model/classes_": np.zeros(10, np.int64)}), "repeats a class"),
        (lambda a: a.update({"model/_index": np.zeros(1)}), r"unknown \['_index'\]"),
        (lambda a: a.update({"other/x": np.zeros(1)}), "arrays of no step"),
        (lambda a: a.update({"model/classes_": np.zeros((10, 2))}), "classes_ is float64"),
        (lambda a: a.update({"model/_fit_X": a["model/_fit_X"].astype(">f4")}), None),
    ],
)
def test_forged_arrays(knn, edit, match):
    forge(knn, arrays_edit=edit)
    if match is None:  # a legitimate variation: still loads and predicts
        assert io.load(knn).model.predict(np.zeros((1, 64), np.uint8)).shape == (1,)
    else:
        refused(knn, match)


def test_object_arrays_are_refused(knn):
    with np.load(knn) as archive:
        arrays = {n: archive[n] for n in archive.files}
    arrays["model/classes_"] = np.arange(10).astype(object)
    write_npz(knn, {}, arrays)
    refused(knn, "objects need pickle")


def test_raw_header_members(knn):
    with np.load(knn) as archive:
        arrays = {n: archive[n] for n in archive.files if n != "__header__"}
    write_npz(knn, {"__header__": b'{"format": "imgclf-model"}'}, arrays)
    refused(knn, "is not an .npy array")
    write_npz(knn, {"__header__.npy": b'{"format": "imgclf-model"}'}, arrays)
    refused(knn, "not a readable imgclf model file|__header__")


def test_duplicate_members(knn):
    with np.load(knn) as archive:
        arrays = {n: archive[n] for n in archive.files}
    with pytest.warns(UserWarning, match="Duplicate name"):
        write_npz(knn, {"model/_y.npy": npy_bytes(b"x")}, arrays)
    refused(knn, "appears twice")


def test_npy_zip_polyglot_and_plain_npy(knn, tmp_path):
    from io import BytesIO

    buffer = BytesIO()
    np.save(buffer, np.zeros(4))
    polyglot = tmp_path / "polyglot.imgclf"
    polyglot.write_bytes(buffer.getvalue() + knn.read_bytes())
    message = refused(polyglot, "not an .npz archive")
    plain = tmp_path / "plain.npy"
    plain.write_bytes(buffer.getvalue())
    message += refused(plain, "not an .npz archive")
    assert "allow_pickle" not in message


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.imgclf"
    os.mkfifo(fifo)
    refused(fifo, "not a regular file")
    refused(tmp_path, "is a directory")


def test_cli_prints_one_error_line(knn, capsys):
    from imgclf.cli import main

    forge(knn, lambda h: h.update(steps="knn"))
    with pytest.raises(SystemExit) as info:
        main(["predict", str(knn), str(knn)])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err.startswith(f"Error: {knn}: header field steps") and err.count("\n") == 1


# Item 8: signing


def test_signed_model_loads_only_with_its_key(digits, tmp_path):
    path = io.save(
        FITTERS["knn"](digits["train"]), tmp_path / "s.imgclf", model_type="knn", key=KEY
    )
    assert io.load(path, key=KEY).verified
    unverified = io.load(path)  # without a key a signed file loads; its checksum still counts
    assert unverified.signed and not unverified.verified
    refused(path, "signature does not match the signing key", key=bytes(32))


def test_unsigned_model_is_refused_when_a_key_is_given(knn):
    refused(knn, "is not signed", key=KEY)


def test_tampering_with_recomputed_checksum_breaks_the_signature(knn):
    forge(knn, key=KEY)
    assert io.load(knn, key=KEY).verified
    forge(knn, lambda h: h["steps"][0]["params"].update(k=1))  # keeps the old signature
    refused(knn, "signature does not match", key=KEY)
    forge(knn, lambda h: h.pop("signature"))
    refused(knn, "is not signed", key=KEY)


def test_key_from_environment(knn, monkeypatch, digits, tmp_path):
    monkeypatch.setenv(io.KEY_ENV, KEY.hex())
    refused(knn, "is not signed")
    path = io.save(FITTERS["knn"](digits["train"]), tmp_path / "e.imgclf", model_type="knn")
    assert io.load(path).verified and io.load(path, key=KEY).verified
    monkeypatch.setenv(io.KEY_ENV, "not hex")
    with pytest.raises(SigningKeyError, match="IMGCLF_MODEL_KEY: a signing key must be hex"):
        io.load(path)


def test_key_files(tmp_path):
    good = tmp_path / "good.key"
    good.write_text(KEY.hex() + "\n")
    assert io.read_key_file(good) == KEY
    short = tmp_path / "short.key"
    short.write_text("abcd")
    with pytest.raises(SigningKeyError, match="short.key: .*at least 16 bytes"):
        io.read_key_file(short)
    binary = tmp_path / "binary.key"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(SigningKeyError, match="binary.key"):
        io.read_key_file(binary)
    with pytest.raises(SigningKeyError, match="no such key file"):
        io.read_key_file(tmp_path / "missing.key")
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo)
    with pytest.raises(SigningKeyError, match="not a regular file"):
        io.read_key_file(fifo)
    with pytest.raises(SigningKeyError, match="at least 16 bytes"):
        io.save(None, tmp_path / "x.imgclf", model_type="knn", key=b"short")


def test_linear_files_written_before_the_solver_parameter_still_load(digits, tmp_path):
    model = FITTERS["linear"](digits["train"])
    path = io.save(model, tmp_path / "model.imgclf", model_type="linear")
    forge(
        path, header_edit=lambda h: [h["steps"][1]["params"].pop(n) for n in ("solver", "max_iter")]
    )
    loaded = io.load(path).model
    assert loaded.steps[1][1].solver == "sgd"
    test = digits["test"]
    np.testing.assert_array_equal(loaded.predict(test.images), model.predict(test.images))
