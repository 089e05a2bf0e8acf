"""The recall-speed picture: one line per index, exact engines as reference, bad records refused."""

import numpy as np
import pytest

from imgclf.plots import recall_speed
from tests.plots_helpers import BAD_MATHTEXT, assert_legend_covers_no_data, assert_png


def records(metric="l2", data="pixels"):
    """Results shaped as benchmarks/bench_ann.py writes them."""
    rows = [
        ("imgclf IVF", f"n_probe={p}", r, q)
        for p, r, q in ((4, 0.54, 9400.0), (8, 0.72, 8500.0), (32, 0.96, 4000.0))
    ]
    rows += [
        ("faiss HNSW32", f"ef={ef}", r, q) for ef, r, q in ((16, 0.8, 3000.0), (64, 0.94, 1200.0))
    ]
    rows += [("exact (imgclf)", "batch", 1.0, 200.0)]
    return [
        {"data": data, "metric": metric, "index": name, "setting": setting, "recall": r, "qps": q}
        for name, setting, r, q in rows
    ]


def lines_by_colour(ax) -> dict[str, np.ndarray]:
    return {str(line.get_color()): line.get_xydata() for line in ax.lines}


def test_writes_a_png_with_log_speed_axis_labels_and_one_line_per_index(tmp_path):
    figure = recall_speed(records(), tmp_path / "rs.png")
    assert_png(tmp_path / "rs.png", min_size=(600, 400))
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel().startswith("recall@10") and ax.get_ylabel() == "queries per second"
    assert ax.get_title() == "pixels, l2"
    assert figure._suptitle.get_text() == "Recall@10 against speed"
    lines = lines_by_colour(ax)
    assert lines["C0"].tolist() == [[0.54, 9400.0], [0.72, 8500.0], [0.96, 4000.0]]
    assert lines["C1"].tolist() == [[0.8, 3000.0], [0.94, 1200.0]]
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["imgclf IVF", "faiss HNSW32", "exact (imgclf)"]


def test_each_point_is_labelled_with_its_setting():
    ax = recall_speed(records()).axes[0]
    texts = {text.get_text() for text in ax.texts}
    assert {"n_probe=4", "n_probe=8", "n_probe=32", "ef=16", "ef=64"} <= texts


def test_exact_engine_is_a_star_and_a_dashed_line_at_its_speed():
    ax = recall_speed(records()).axes[0]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {200.0}
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert [star.get_xydata().tolist() for star in stars] == [[[1.0, 200.0]]]
    assert any(text.get_text().startswith("exact (imgclf): 200") for text in ax.texts)


def test_one_panel_per_data_and_metric():
    figure = recall_speed(records("l2") + records("l1") + records("l2", data="hog+color"))
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["pixels, l2", "pixels, l1", "hog+color, l2"]
    assert all(ax.get_yscale() == "log" for ax in visible)
    # the same index keeps its colour in every panel
    assert all(lines_by_colour(ax)["C0"][0, 0] == 0.54 for ax in visible)


def test_k_picks_the_recall_at_k_field_and_names_the_axis():
    rows = [
        {"index": "IVF", "recall@1": 0.9, "recall": 0.5, "qps": 10.0},
        {"index": "IVF", "recall@1": 0.99, "recall": 0.6, "qps": 5.0},
    ]
    ax = recall_speed(rows, k=1).axes[0]
    assert ax.get_xlabel().startswith("recall@1 ")
    assert ax.lines[0].get_xdata().tolist() == [0.9, 0.99]
    assert recall_speed(rows).axes[0].lines[0].get_xdata().tolist() == [0.5, 0.6]


def test_legend_covers_no_point():
    assert_legend_covers_no_data(recall_speed(records() + records("l1")))


def test_names_from_data_are_drawn_literally():
    rows = [{"index": BAD_MATHTEXT, "setting": BAD_MATHTEXT, "recall": 0.5, "qps": 1.0}]
    recall_speed(rows, title=BAD_MATHTEXT).canvas.draw()  # unescaped mathtext would raise


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([], "results is empty"),
        ({"index": "IVF", "recall": 0.5, "qps": 1.0}, "list of dicts"),
        ([{"index": "IVF", "recall": 0.5}], r"results\[0\] has no 'qps' field"),
        ([{"recall": 0.5, "qps": 1.0}], r"results\[0\] has no 'index' field"),
        ([{"index": "IVF", "qps": 1.0}], r"results\[0\] has no 'recall' field"),
        (["IVF"], r"results\[0\] must be a dict"),
        ([{"index": "IVF", "recall": 1.5, "qps": 1.0}], r"results\[0\]\['recall'\] must be in"),
        ([{"index": "IVF", "recall": 0.5, "qps": 0}], r"\['qps'\] must be > 0"),
        ([{"index": "IVF", "recall": 0.5, "qps": "fast"}], r"\['qps'\] must be a finite"),
        ([{"index": "IVF", "recall": float("nan"), "qps": 1.0}], r"\['recall'\] must be a finite"),
    ],
)
def test_bad_results_raise_value_error_naming_the_field(results, message):
    with pytest.raises(ValueError, match=message):
        recall_speed(results)


def test_second_record_missing_qps_is_named():
    rows = records()
    del rows[1]["qps"]
    with pytest.raises(ValueError, match=r"results\[1\] has no 'qps' field"):
        recall_speed(rows)


def test_k_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_speed(records(), k=0)
