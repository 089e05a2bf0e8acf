"""The recall-speed picture of approximate nearest-neighbour search.

Each index family (imgclf IVF, faiss IVF-Flat, faiss HNSW, hnswlib, ...) is
one line: a point per setting (``n_probe``, ``ef``), recall@k across, queries
per second up (log scale), each point labelled with its setting. Exact
engines, whose recall is 1 by definition, are drawn as a star with a dashed
line at their speed: an approximate setting is worth having only above it.
Results that name several metrics or data sets get one panel each.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from matplotlib.lines import Line2D

from imgclf._validation import check_int
from imgclf.plots._figure import literal, new_figure, save

__all__ = ["recall_speed"]

MARKERS = "osD^vP<>Xh"
EXACT_STYLES = (("black", "--"), ("dimgray", ":"), ("gray", "-."))


def recall_speed(results, path: str | os.PathLike | None = None, *, k: int = 10, title=None):
    """Recall@k against queries per second, one line per index, exact engines for reference.

    Parameters
    ----------
    results : list of dict
        One record per index and setting, as ``benchmarks/bench_ann.py``
        writes them to JSON, e.g. ``{"index": "imgclf IVF", "metric": "l2",
        "setting": "n_probe=8", "recall": 0.93, "qps": 5400.0}``. Required:
        ``"index"`` (the line it belongs to), ``"qps"`` (> 0) and the recall
        in [0, 1], read from ``"recall@<k>"`` when the record has it, else
        from ``"recall"``. Optional: ``"setting"`` (the point's label),
        ``"metric"`` and ``"data"`` (one panel per distinct pair). An index
        whose name starts with "exact" is a reference: a star and a dashed
        horizontal line at its speed, not a line through settings.
    path : path, optional
        Where to write the PNG.
    k : int, default=10
        The recall's depth: names the axis and picks ``"recall@<k>"``.
    title : str, optional
        Default: "Recall@k against speed".

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``results`` is empty, or a record lacks a field or holds a value out
        of range (the message names the record and the field).

    Examples
    --------
    >>> runs = [
    ...     {"index": "imgclf IVF", "setting": "n_probe=8", "recall": 0.72, "qps": 9000.0},
    ...     {"index": "imgclf IVF", "setting": "n_probe=32", "recall": 0.96, "qps": 4000.0},
    ...     {"index": "exact", "recall": 1.0, "qps": 400.0},
    ... ]
    >>> figure = recall_speed(runs)            # add a path to write the PNG
    >>> figure.axes[0].get_yscale()
    'log'
    """
    k = check_int("k", k, low=1)
    records = _checked(results, k)
    panels: dict[str, list[dict]] = {}
    for record in records:
        panels.setdefault(record["panel"], []).append(record)
    styles = _styles(records)
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(7.2 * columns + 0.6, 5.0 * rows + 1.0)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (label, members) in zip(axes, panels.items(), strict=False):
        _draw_panel(ax, members, styles, k)
        ax.set_title(literal(label))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(literal(title or f"Recall@{k} against speed"), fontsize="x-large")
    handles = [_handle(name, style) for name, style in styles.items()]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)))
    return save(figure, path)


def _checked(results, k: int) -> list[dict]:
    """The records, validated, as dicts with index, panel, setting, recall and qps."""
    if isinstance(results, Mapping) or not hasattr(results, "__iter__"):
        raise ValueError(f"results must be a list of dicts (records); got {type(results).__name__}")
    records = list(results)
    if not records:
        raise ValueError(
            "results is empty: give at least one record such as "
            "{'index': 'imgclf IVF', 'setting': 'n_probe=8', 'recall': 0.93, 'qps': 5400.0}"
        )
    return [_checked_record(i, record, k) for i, record in enumerate(records)]


def _checked_record(i: int, record, k: int) -> dict:
    if not isinstance(record, Mapping):
        raise ValueError(f"results[{i}] must be a dict; got {type(record).__name__}")
    recall_key = f"recall@{k}" if f"recall@{k}" in record else "recall"
    for field in ("index", recall_key, "qps"):
        if field not in record:
            raise ValueError(
                f"results[{i}] has no {field!r} field; every record needs 'index', "
                f"'recall' (or 'recall@{k}') and 'qps'"
            )
    recall = _number(i, recall_key, record[recall_key])
    qps = _number(i, "qps", record["qps"])
    if not 0.0 <= recall <= 1.0:
        raise ValueError(f"results[{i}][{recall_key!r}] must be in [0, 1]; got {recall}")
    if qps <= 0.0:
        raise ValueError(f"results[{i}]['qps'] must be > 0 (a log axis); got {qps}")
    where = [str(record[key]) for key in ("data", "metric") if record.get(key) is not None]
    setting = record.get("setting")
    return {
        "index": str(record["index"]),
        "panel": ", ".join(where),
        "setting": None if setting is None else str(setting),
        "recall": recall,
        "qps": qps,
    }


def _number(i: int, field: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"results[{i}][{field!r}] must be a finite number; got {value!r}")
    return number


def _is_exact(name: str) -> bool:
    return name.lower().startswith("exact")


def _styles(records: list[dict]) -> dict[str, dict]:
    """One colour and marker per approximate index, one grey dashed style per exact one."""
    names = list(dict.fromkeys(r["index"] for r in records))
    approximate = [n for n in names if not _is_exact(n)]
    exact = [n for n in names if _is_exact(n)]
    styles = {
        name: {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)], "exact": False}
        for i, name in enumerate(approximate)
    }
    for i, name in enumerate(exact):
        colour, line = EXACT_STYLES[i % len(EXACT_STYLES)]
        styles[name] = {"color": colour, "marker": "*", "linestyle": line, "exact": True}
    return styles


def _handle(name: str, style: dict) -> Line2D:
    line = style.get("linestyle", "-")
    size = 14 if style["exact"] else 7
    return Line2D(
        [],
        [],
        color=style["color"],
        marker=style["marker"],
        linestyle=line,
        markersize=size,
        label=literal(name),
    )


def _draw_panel(ax, records: list[dict], styles: dict, k: int) -> None:
    for name in dict.fromkeys(r["index"] for r in records):
        points = sorted((r for r in records if r["index"] == name), key=lambda r: r["recall"])
        if styles[name]["exact"]:
            _draw_exact(ax, name, points, styles[name])
        else:
            _draw_family(ax, points, styles[name])
    ax.set_yscale("log")
    lowest = min(r["recall"] for r in records)
    ax.set_xlim(max(0.0, math.floor((lowest - 0.02) * 20) / 20), 1.01)
    ax.set(xlabel=f"recall@{k} (share of the true {k} nearest found)", ylabel="queries per second")
    ax.grid(alpha=0.3, which="both")


def _draw_family(ax, points: list[dict], style: dict) -> None:
    """A line through the settings, each labelled: labels alternate above-right and
    below-left of their point, the highest recall's to the left, so neighbours on a
    steep stretch do not overprint each other and no label runs off the right edge."""
    colour = style["color"]
    xs, ys = [p["recall"] for p in points], [p["qps"] for p in points]
    ax.plot(xs, ys, color=colour, marker=style["marker"], markersize=6, linewidth=1.5)
    for rank, point in enumerate(reversed(points)):
        if not point["setting"]:
            continue
        left = rank % 2 == 0
        ax.annotate(
            literal(point["setting"]),
            (point["recall"], point["qps"]),
            xytext=(-6, -4) if left else (6, 4),
            textcoords="offset points",
            ha="right" if left else "left",
            va="top" if left else "bottom",
            fontsize="x-small",
            color=colour,
        )


def _draw_exact(ax, name: str, points: list[dict], style: dict) -> None:
    for point in points:
        ax.axhline(point["qps"], color=style["color"], linestyle=style["linestyle"], linewidth=1)
        ax.plot(
            point["recall"],
            point["qps"],
            marker="*",
            markersize=14,
            linestyle="none",
            color=style["color"],
            markeredgecolor="black",
        )
        ax.annotate(
            literal(f"{name}: {point['qps']:,.0f} queries/s"),
            (0.01, point["qps"]),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize="small",
            color=style["color"],
        )
