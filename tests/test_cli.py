"""The command line: output, exit codes, and errors without tracebacks."""

import json
import subprocess
import sys

import numpy as np
import pytest

from imgclf.cli import main


def run(*argv: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    return info.value.code


def test_datasets_prints_each_split(capsys):
    assert run("datasets", "digits") == 0
    text = capsys.readouterr().out
    assert "train: 1,437 images of shape (8, 8, 1), 10 classes" in text
    assert "test: 360 images" in text


def test_datasets_json(capsys):
    assert run("datasets", "toy:xor", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train"]["images"] == 400
    assert info["train"]["classes"] == ["quadrants 1+3", "quadrants 2+4"]


def test_user_error_prints_error_line_and_exits_1(capsys):
    assert run("datasets", "no/such/place") == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "no/such/place" in err
    assert "Traceback" not in err


def test_bad_size_is_a_usage_error(capsys):
    assert run("datasets", "digits", "--size", "big") == 2
    assert "HxW" in capsys.readouterr().err


def test_demo_chooses_trains_tests_and_reports(tmp_path, capsys):
    report = tmp_path / "report.html"
    assert run("demo", "-o", str(report)) == 0
    text = capsys.readouterr().out
    assert "5-fold cross-validation on 1,437 training images" in text
    assert "evaluated once on 360 test images" in text
    summary = text[text.index("imgclf demo: digits") :]
    assert "knn" in summary and "linear" in summary
    assert report.read_text().startswith("<!DOCTYPE html>")


def test_console_script_exit_codes_and_debug():
    cmd = [sys.executable, "-m", "imgclf", "datasets", "no/such/place"]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_cv_prints_table_choice_and_final_test(tmp_path, capsys):
    plot, out = tmp_path / "cv.png", tmp_path / "cv.json"
    code = run(
        "cv",
        "digits",
        "--k",
        "1,3,5",
        "--metric",
        "l1,l2",
        "--folds",
        "3",
        "--plot",
        str(plot),
        "-o",
        str(out),
        "--final-test",
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "3-fold cross-validation" in text and "the test split was not used" in text
    assert "evaluated once on 360 test images" in text
    result = json.loads(out.read_text())
    assert len(result["results"]) == 6 and result["n_test"] == 360
    assert result["best_params"]["k"] in (1, 3, 5)
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cv_without_final_test_never_touches_test(monkeypatch, capsys):
    from imgclf import experiments

    def refuse(*args):
        raise AssertionError("test split used")

    monkeypatch.setattr(experiments, "fit_and_evaluate", refuse)
    monkeypatch.setattr(experiments, "evaluate", refuse)
    assert run("cv", "digits", "--k", "1", "--val-size", "200", "--train-size", "800") == 0
    assert "held-out validation set (200) on 800 training images" in capsys.readouterr().out


@pytest.mark.parametrize("model_args", [["--k", "1,3"], ["--model", "linear", "--epochs", "5"]])
def test_cv_repeated_held_out_scores_every_split(tmp_path, capsys, model_args):
    from imgclf.datasets import load_digits
    from imgclf.experiments import make_model
    from imgclf.model_selection import repeated_train_val_split

    out = tmp_path / "cv.json"
    argv = ["cv", "digits", *model_args, "--val-size", "200", "--repeats", "3", "--seed", "2"]
    assert run(*argv, "-o", str(out)) == 0
    assert "held-out validation set (200), 3 seeded splits averaged" in capsys.readouterr().out
    result = json.loads(out.read_text())
    train = load_digits()["train"]
    splits = repeated_train_val_split(train.labels, 200, repeats=3, seed=2)
    for record in result["results"]:
        params = {k: v for k, v in record.items() if k not in ("mean", "std", "folds")}
        model_name = "linear" if "learning_rate" in params else "knn"
        fixed = {"epochs": 5, "seed": 2} if model_name == "linear" else {}
        expected = [
            make_model(model_name, **fixed, **params)
            .fit(train.X[fit], train.labels[fit])
            .score(train.X[val], train.labels[val])
            for fit, val in splits
        ]
        np.testing.assert_allclose(record["folds"], expected)
        assert record["mean"] == pytest.approx(np.mean(expected))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cv", "digits", "--k", "1,x"], "--k"),
        (["cv", "digits", "--k", "5000"], "k=5000 is larger than the smallest training fold"),
        (["cv", "digits", "--metric", "cosine"], "metric must be one of"),
        (["cv", "digits", "--model", "tree"], "model must be one of"),
        (["cv", "digits", "--repeats", "3"], "repeats=3 repeats a held-out split"),
        (["cv", "digits", "--val-size", "100", "--repeats", "0"], "repeats must be >= 1"),
    ],
)
def test_cv_errors(argv, message, capsys):
    assert run(*argv) in (1, 2)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "model_args", [["--model", "knn", "--k", "3"], ["--model", "linear", "--epochs", "5"]]
)
def test_train_evaluate_predict_round_trip(tmp_path, capsys, model_args):
    from PIL import Image

    from imgclf.datasets import load_digits

    model = tmp_path / "m.imgclf"
    assert run("train", "digits", "-o", str(model), *model_args) == 0
    assert model.exists()
    capsys.readouterr()
    assert run("evaluate", str(model), "digits", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_test"] == 360 and result["accuracy"] > 0.85
    test = load_digits()["test"]
    small = tmp_path / "digit.png"
    Image.fromarray(test.images[0, :, :, 0]).save(small)
    big = tmp_path / "big.png"
    Image.fromarray(test.images[0, :, :, 0]).resize((32, 32)).convert("RGB").save(big)
    assert run("predict", str(model), str(small), str(big), "--top", "3", "--json") == 0
    first, second = json.loads(capsys.readouterr().out)
    assert len(first["top"]) == 3 and first["resized"] is None
    assert second["resized"] == "8x8"
    assert first["top"][0]["class"] in "0123456789"


def test_predict_decodes_a_same_size_jpeg_as_the_loader_does(tmp_path):
    """Asking Pillow for a size enables JPEG draft mode, whose greyscale differs slightly."""
    from PIL import Image

    from imgclf.datasets.folder import read_image
    from imgclf.io import SavedModel
    from imgclf.neighbors import KNNClassifier
    from imgclf.predict import predict_file

    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(path)
    as_loaded = read_image(path, mode="L")
    drafted = read_image(path, mode="L", size=(32, 32))
    assert not np.array_equal(as_loaded, drafted)  # else this test proves nothing
    knn = KNNClassifier(k=1).fit(np.stack([as_loaded, drafted]).reshape(2, -1), [0, 1])
    saved = SavedModel(
        knn, {"model_type": "knn", "class_names": ["loaded", "drafted"], "image_shape": [32, 32, 1]}
    )
    result = predict_file(saved, path, top=1)
    assert result["resized"] is None and result["top"][0]["class"] == "loaded"


def test_predict_errors_are_clean(tmp_path, capsys):
    model = tmp_path / "m.imgclf"
    run("train", "digits", "-o", str(model))
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    assert run("predict", str(model), str(bad)) == 1
    assert "not-an-image.png" in capsys.readouterr().err
    assert run("predict", str(tmp_path / "missing.imgclf"), str(bad)) == 1
    assert "no such model file" in capsys.readouterr().err


def test_evaluate_on_a_set_without_test_split(tmp_path, capsys):
    from PIL import Image

    model = tmp_path / "m.imgclf"
    run("train", "digits", "-o", str(model))
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "imgs" / cls / "x.png")
    assert run("evaluate", str(model), str(tmp_path / "imgs")) == 1
    assert "no test split" in capsys.readouterr().err


def test_report_command_writes_html(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert (
        run("report", "digits", "--model", "knn", "--k", "1,3", "--folds", "3", "-o", str(out)) == 0
    )
    assert out.read_text().count("data:image/png;base64") >= 4
    assert "final test" in capsys.readouterr().out


def test_quiet_prints_only_the_result(tmp_path, capsys):
    assert run("--quiet", "train", "digits", "-o", str(tmp_path / "m.imgclf")) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("trained knn on 1,437 images") and "k=1, metric='l2'" in line


def test_net_with_features_trains_and_reloads(tmp_path, capsys, shared_cifar, cifar_cache):
    model = tmp_path / "net.imgclf"
    assert (
        run(
            "train",
            str(shared_cifar),
            "--model",
            "net",
            "--features",
            "hog,color",
            "--epochs",
            "2",
            "--train-size",
            "500",
            "-o",
            str(model),
        )
        == 0
    )
    capsys.readouterr()
    saved_json = tmp_path / "ev.json"
    assert (
        run(
            "cv",
            str(shared_cifar),
            "--model",
            "knn",
            "--features",
            "hog,color",
            "--train-size",
            "500",
            "--k",
            "1,5",
            "--folds",
            "3",
            "-o",
            str(saved_json),
        )
        == 0
    )
    assert json.loads(saved_json.read_text())["best_params"]["features"] == ["hog", "color"]
    from imgclf import io

    loaded = io.load(model)
    assert loaded.model_type == "net" and loaded.header["preprocessing"] == "hog,color"


def test_quiet_cv_still_prints_the_choice(capsys):
    assert run("--quiet", "cv", "toy:xor", "--k", "1,5", "--folds", "3") == 0
    text = capsys.readouterr().out
    assert text.startswith("chosen: k=") and len(text.splitlines()) == 1  # no table, no chatter


def test_version(capsys):
    from imgclf import __version__

    assert run("--version") == 0
    assert capsys.readouterr().out.strip() == f"imgclf {__version__}"


def test_explicit_zero_is_honoured_or_refused(tmp_path, capsys):
    from imgclf import io

    model = tmp_path / "m.imgclf"
    assert (
        run("train", "digits", "--model", "linear", "--reg", "0", "--epochs", "2", "-o", str(model))
        == 0
    )
    assert io.load(model).model.steps[-1][1].reg == 0
    assert "reg=0.0" in capsys.readouterr().out
    assert run("train", "digits", "--model", "linear", "--lr", "0", "-o", str(model)) == 1
    assert "learning_rate must be a positive number; got 0" in capsys.readouterr().err
    assert run("train", "digits", "--k", "0", "-o", str(model)) == 1
    assert "k must be >= 1; got 0" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--k", "--metric", "--lr"])
def test_a_list_option_without_values_is_a_usage_error(option, capsys):
    assert run("cv", "digits", option, ",,,") == 2
    assert option in capsys.readouterr().err


def test_evaluate_json_has_confusion_and_per_class(tmp_path, capsys):
    model = tmp_path / "m.imgclf"
    run("train", "digits", "--k", "3", "-o", str(model))
    capsys.readouterr()
    assert run("evaluate", str(model), "digits", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    confusion = np.array(result["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 360
    assert result["accuracy"] == pytest.approx(np.trace(confusion) / 360)
    assert result["per_class_accuracy"]["0"] == pytest.approx(confusion[0, 0] / confusion[0].sum())
    assert result["hyperparameters"]["k"] == 3 and result["model_type"] == "knn"


def test_evaluate_refuses_other_images_in_words(tmp_path, capsys):
    model = tmp_path / "m.imgclf"
    run("train", "digits", "-o", str(model))
    capsys.readouterr()
    assert run("evaluate", str(model), "toy:ring") == 1
    assert "the model expects 8x8x1 images (digits); toy:ring:test has 2D points" in (
        capsys.readouterr().err
    )


def test_predict_takes_folders_and_goes_on_past_a_bad_file(tmp_path, capsys):
    from PIL import Image

    from imgclf.datasets import load_digits

    model = tmp_path / "m.imgclf"
    run("train", "digits", "--model", "linear", "--epochs", "3", "-o", str(model))
    folder = tmp_path / "photos" / "more"
    folder.mkdir(parents=True)
    for i, image in enumerate(load_digits()["test"].images[:2]):
        Image.fromarray(image[:, :, 0]).save(folder / f"{i}.png")
    (folder / "broken.png").write_text("not an image")
    capsys.readouterr()
    assert run("predict", str(model), str(tmp_path / "photos"), "--top", "2") == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0].rsplit("/", 1)[-1] for line in lines] == ["0.png", "1.png"]
    assert "(probability " in lines[0]
    assert "broken.png" in captured.err and captured.err.startswith("Error: ")


def test_predict_names_what_the_scores_are(tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "x.png"
    Image.new("L", (8, 8), 7).save(png)
    for args, kind in [
        (["--model", "knn", "--k", "3"], "vote share"),
        (["--model", "linear", "--loss", "svm", "--epochs", "2"], "margin"),
    ]:
        model = tmp_path / "m.imgclf"
        run("train", "digits", *args, "-o", str(model))
        capsys.readouterr()
        assert run("predict", str(model), str(png), "--json") == 0
        (prediction,) = json.loads(capsys.readouterr().out)
        assert prediction["score"] == kind


def test_outputs_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        assert run("train", "digits", "-o", str(tmp_path / "m.imgclf")) == 0
        assert (
            run(
                "report",
                "digits",
                "--k",
                "1",
                "--metric",
                "l2",
                "--folds",
                "2",
                "-o",
                str(tmp_path / "r.html"),
            )
            == 0
        )
    finally:
        os.umask(old)
    for name in ("m.imgclf", "r.html"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_skipped_images_are_one_warning_line(tmp_path, capsys):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "imgs" / "a" / "broken.png").write_text("oops")
    assert run("datasets", str(tmp_path / "imgs"), "--on-error", "skip") == 0
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert (
        line.startswith("warning: skipped 1 image(s) that failed to decode: ")
        and "broken.png" in line
    )


def test_test_size_carves_a_stratified_test_split(tmp_path, capsys):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / "imgs" / cls / f"{i}.png")
    assert run("datasets", str(tmp_path / "imgs"), "--test-size", "4", "--json") == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["test"]["per_class"] == {"a": 2, "b": 2} and info["train"]["images"] == 16
    assert "held out 4 of the training images as the test split" in captured.err
    assert run("datasets", "digits", "--test-size", "0.1") == 1
    assert "already has a test split" in capsys.readouterr().err


def test_download_command(tmp_path, monkeypatch, capsys):
    import hashlib

    from imgclf.datasets import download as dl

    source = tmp_path / "cifar-10-python.tar.gz"
    source.write_bytes(b"archive bytes")
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    monkeypatch.setitem(dl.DATASETS, "cifar10", [dl.RemoteFile(source.as_uri(), md5)])
    assert run("download", "cifar10", "--to", str(tmp_path / "data")) == 0
    assert (tmp_path / "data" / "cifar-10-python.tar.gz").read_bytes() == b"archive bytes"
    assert str(tmp_path / "data") in capsys.readouterr().out
    assert run("download", "svhn") == 1
    assert "unknown dataset 'svhn'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "digits", "-o", "{folder}"],
        ["cv", "digits", "--k", "1", "--plot", "{file}/cv.png"],
        ["report", "digits", "-o", "{folder}"],
    ],
)
def test_output_paths_are_checked_before_the_work(tmp_path, capsys, monkeypatch, argv):
    from imgclf import experiments

    def refuse(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(experiments, "run_model", refuse)
    monkeypatch.setattr(experiments, "train_model", refuse)
    (tmp_path / "file").write_text("x")
    args = [a.format(folder=tmp_path, file=tmp_path / "file") for a in argv]
    assert run(*args) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: cannot write ") and ".part" not in err


def make_split_folder(root, splits: dict[str, dict[str, list[int]]]):
    """``root/<split>/<class>/<i>.png``, each image one grey value."""
    from PIL import Image

    for split, classes in splits.items():
        for name, values in classes.items():
            (root / split / name).mkdir(parents=True)
            for i, value in enumerate(values):
                Image.new("L", (4, 4), value).save(root / split / name / f"{i}.png")
    return root


def test_labels_are_matched_by_class_name(tmp_path, capsys):
    """test/ lacks a class and numbers the others differently: still scored right."""
    data = make_split_folder(
        tmp_path / "d",
        {
            "train": {"a": [0, 10], "b": [100, 110], "c": [200, 210]},
            "test": {"a": [5], "c": [205, 215]},  # "c" is class 1 here, class 2 in training
        },
    )
    model = tmp_path / "m.imgclf"
    assert run("train", str(data), "-o", str(model)) == 0
    capsys.readouterr()
    assert run("evaluate", str(model), str(data), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == 1.0 and result["classes"] == ["a", "b", "c"]
    assert result["per_class_accuracy"]["c"] == 1.0 and np.isnan(result["per_class_accuracy"]["b"])
    assert run("cv", str(data), "--k", "1", "--folds", "2", "--final-test") == 0
    assert "evaluated once on 3 test images: accuracy 1.0000" in capsys.readouterr().out


def test_a_test_class_the_model_never_saw_is_an_error(tmp_path, capsys):
    data = make_split_folder(
        tmp_path / "d",
        {"train": {"cat": [0, 10], "dog": [200, 210]}, "test": {"cow": [0, 10], "dog": [205]}},
    )
    model = tmp_path / "m.imgclf"
    run("train", str(data), "-o", str(model))
    capsys.readouterr()
    assert run("evaluate", str(model), str(data)) == 1
    err = capsys.readouterr().err
    assert "'cow' are not among the classes 'cat', 'dog'" in err


def test_report_on_splits_that_number_classes_apart(tmp_path, capsys):
    data = make_split_folder(
        tmp_path / "d",
        {"train": {"a": [0, 10], "b": [100, 110], "c": [200, 210]}, "test": {"c": [205, 215]}},
    )
    out = tmp_path / "r.html"
    assert run("report", str(data), "--k", "1", "--folds", "2", "-o", str(out)) == 0
    assert "accuracy 1.0000" in capsys.readouterr().out and out.is_file()


def test_signed_models(tmp_path, capsys, monkeypatch):
    key, other = tmp_path / "key", tmp_path / "other"
    key.write_text("ab" * 32)
    other.write_text("cd" * 32)
    model = tmp_path / "m.imgclf"
    assert run("train", "digits", "--sign-key-file", str(key), "-o", str(model)) == 0
    assert run("evaluate", str(model), "digits", "--sign-key-file", str(key)) == 0
    capsys.readouterr()
    assert run("evaluate", str(model), "digits", "--sign-key-file", str(other)) == 1
    assert "signature does not match" in capsys.readouterr().err
    unsigned = tmp_path / "u.imgclf"
    run("train", "digits", "-o", str(unsigned))
    monkeypatch.setenv("IMGCLF_MODEL_KEY", "ab" * 32)
    capsys.readouterr()
    assert run("predict", str(unsigned), str(tmp_path / "x.png")) == 1
    assert "not signed" in capsys.readouterr().err


def test_cv_sweeps_n_probe_of_an_ivf_index(tmp_path, capsys):
    out = tmp_path / "cv.json"
    plot = tmp_path / "cv.png"
    argv = ["cv", "digits", "--algorithm", "ivf", "--n-lists", "20", "--n-probe", "1,4,20"]
    assert run(*argv, "--k", "1", "--metric", "l1", "-o", str(out), "--plot", str(plot)) == 0
    text = capsys.readouterr().out
    assert "n_probe" in text and "chosen: k=1" in text
    results = json.loads(out.read_text())["results"]
    assert [row["n_probe"] for row in results] == [1, 4, 20]
    assert results[-1]["mean"] >= results[0]["mean"] - 0.01  # every list: exact k-NN
    assert plot.stat().st_size > 0


def test_train_evaluate_with_an_approximate_index(tmp_path, capsys):
    model = tmp_path / "ivf.imgclf"
    assert run("train", "digits", "--algorithm", "ivf", "--n-probe", "3", "-o", str(model)) == 0
    trained = capsys.readouterr().out
    assert "algorithm='ivf'" in trained and "n_probe=3" in trained
    assert run("evaluate", str(model), "digits", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] > 0.9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cv", "digits", "--n-probe", "2,4"], "n_probe values apply to approximate search"),
        (["train", "digits", "--algorithm", "annoy", "-o", "{tmp}/m"], "algorithm must be one of"),
        (
            ["train", "digits", "--algorithm", "ivf", "--n-lists", "5000", "-o", "{tmp}/m"],
            "fewer than",
        ),
    ],
)
def test_index_errors_are_one_line(tmp_path, capsys, argv, message):
    assert run(*[a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err and "Traceback" not in err
