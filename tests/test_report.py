"""The HTML report: self-contained, escaped, and rendered by a real browser without errors."""

import dataclasses
import html
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from imgclf import datasets, experiments
from imgclf.model_selection import SearchResult
from imgclf.report import (
    Report,
    _net_with_curves,
    _search_figure,
    _search_section,
    experiment_report,
)
from tests.plots_helpers import BAD_MATHTEXT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Appended to a copy of the report: records script errors and checks every image decoded.
PROBE = """
<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e)));
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = `images=${imgs.length} broken=${broken} errors=${window.__errors.length}`;
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def demo_runs():
    return experiments.run_demo(datasets.load("digits"))


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory, demo_runs):
    splits = datasets.load("digits")
    path = tmp_path_factory.mktemp("report") / "report.html"
    experiment_report("demo <digits>", splits, demo_runs, {"load": 0.1}).write(path)
    return path


def sections(html_text: str) -> dict[str, str]:
    """The report's ``<h2>`` sections by heading, unescaped."""
    parts = re.split(r"<h2>(.*?)</h2>", html.unescape(html_text))
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def captions(section: str) -> list[str]:
    return re.findall(r"<figcaption>(.*?)</figcaption>", section, flags=re.S)


def test_report_is_self_contained(demo_report):
    text = demo_report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)  # nothing fetched
    images = re.findall(r'src="data:image/png;base64,', text)
    assert len(images) >= 8  # samples, curve, heat map, 2 confusions, neighbours, templates, loss
    for section in (
        "Dataset",
        "hyperparameter search",
        "final test (evaluated once)",
        "top-5 accuracy",
        "Run time",
        "nearest training images",
        "template",
    ):
        assert section in text, section


def test_each_search_gets_its_own_picture(demo_report):
    parts = sections(demo_report.read_text())
    knn = captions(parts["k-NN: hyperparameter search"])
    linear = captions(parts["Linear classifier (softmax, sgd): hyperparameter search"])
    assert len(knn) == 1 and knn[0].startswith("Validation accuracy against k")
    assert len(linear) == 1 and "learning rate and regularization strength" in linear[0]
    assert "against k" not in parts["Linear classifier (softmax, sgd): hyperparameter search"]


def test_search_figures_are_a_k_curve_and_a_heat_map(demo_runs):
    knn, linear = (_search_figure(run.selection.search)[0] for run in demo_runs)
    ks = sorted({c["k"] for c in demo_runs[0].selection.search.configs})
    knn.canvas.draw()
    assert knn.axes[0].get_xticks().tolist() == ks and not knn.axes[0].get_images()
    heat = linear.axes[0]
    assert heat.get_images() and heat.get_xlabel() == "learning rate"
    assert heat.get_ylabel() == "regularization strength"
    grid = experiments.DEMO_GRIDS["linear"]
    assert [t.get_text() for t in heat.get_xticklabels()] == [
        f"{v:g}" for v in grid["learning_rate"]
    ]
    assert [t.get_text() for t in heat.get_yticklabels()] == [f"{v:g}" for v in grid["reg"]]


def test_run_time_table_uses_words(demo_report):
    table = sections(demo_report.read_text())["Run time"]
    stages = re.findall(r"<tr><td>(.*?)</td>", table)
    assert "k-NN: hyperparameter search" in stages and "k-NN: fit and test" in stages
    assert "Linear classifier (softmax, sgd): fit and test" in stages
    assert not [s for s in stages if re.search(r"_s\b|_", s)], stages


def test_a_search_without_folds_shows_no_std_column():
    search = SearchResult([{"k": 1}, {"k": 3}], np.array([[0.5], [0.7]]))
    selection = experiments.Selection("knn", search, 10, "held-out validation set (2)")
    run = experiments.ModelRun(selection, None, None)
    report = Report("x")
    _search_section(report, run)
    text = report.render()
    assert "Held-out validation set" in text and "std" not in text


def test_a_single_configuration_gets_no_picture():
    search = SearchResult([{"learning_rate": 0.1, "reg": 1e-4}], np.array([[0.5, 0.7]]))
    run = experiments.ModelRun(experiments.Selection("linear", search, 10, "2-fold"), None, None)
    report = Report("x")
    _search_section(report, run)
    text = report.render()
    assert "<img" not in text and "One configuration was tried" in text


@pytest.fixture(scope="module")
def toy_runs():
    splits = datasets.load("toy:blobs")
    knn = experiments.run_model(splits, "knn", {"k": [1, 4]}, folds=3)
    linear = experiments.run_model(
        splits, "linear", {"learning_rate": [0.1], "reg": [1e-4]}, folds=3, fixed={"epochs": 5}
    )
    return splits, knn, linear


def test_toy_reports_show_decision_regions(toy_runs):
    splits, knn, linear = toy_runs
    parts = sections(experiment_report("toy", splits, [knn, linear], {}).render())
    assert captions(parts["Dataset"]) == ["The training points, coloured by class"]
    knn_pictures = captions(parts["k-NN: how it decides"])
    assert len(knn_pictures) == 1 and knn_pictures[0].startswith("Which class k-NN predicts")
    linear_pictures = captions(parts["Linear classifier (softmax, sgd): what it learned"])
    assert any("each class's line where its score w·x + b is zero" in c for c in linear_pictures)


def test_knn_regions_in_a_report_use_the_chosen_configuration(toy_runs):
    from imgclf.report import _regions_figure

    splits, knn, _ = toy_runs
    report = Report("x")
    _regions_figure(report, knn)
    k = knn.selection.best_params["k"]
    assert f"the chosen k is {k}" in html.unescape(report.render())


def test_class_names_with_dollar_signs_render_in_a_report(toy_runs):
    splits, knn, linear = toy_runs
    names = [BAD_MATHTEXT, "$5", "a $b$ c"]
    renamed = {
        split: datasets.Dataset(None, ds.labels, names, ds.name, points=ds.points)
        for split, ds in splits.items()
    }
    runs = [dataclasses.replace(run, train=renamed["train"]) for run in (knn, linear)]
    text = experiment_report("dollars", renamed, runs, {}).render()
    assert html.escape(BAD_MATHTEXT) in text  # in the tables, as written


def test_net_report_draws_training_and_validation_accuracy():
    splits = datasets.load("digits")
    run = experiments.run_model(
        splits,
        "net",
        {"learning_rate": [1e-3], "reg": [1e-4]},
        val_size=0.2,
        fixed={"epochs": 3, "hidden": 16},
    )
    parts = sections(experiment_report("net", splits, [run], {}).render())
    learned = captions(parts["Two-layer network: what it learned"])
    assert any("held out 10%" in c for c in learned), learned
    net, _ = _net_with_curves(run)
    final = net.steps[-1][1]
    assert len(final.train_acc_history_) == len(final.val_acc_history_) == 3


def test_text_is_escaped():
    html = Report("<script>alert(1)</script>").text("a & <b>").render()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "a &amp; &lt;b&gt;" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_report_renders_in_headless_chromium(demo_report):
    probe_page = demo_report.with_name("probe.html")
    probe_page.write_text(demo_report.read_text().replace("</body>", PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                CHROMIUM,
                *BROWSER_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                probe_page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    match = re.search(r"images=(\d+) broken=(\d+) errors=(\d+)", dom)
    assert match, f"probe did not run; DOM starts {dom[:300]!r}"
    images, broken, errors = map(int, match.groups())
    assert images >= 8 and broken == 0 and errors == 0


def test_write_is_atomic_and_returns_path(tmp_path):
    path = Report("x").text("y").write(tmp_path / "r.html")
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in Path(tmp_path).iterdir()] == ["r.html"]
