"""How a model's test accuracy falls as the test images are perturbed (the lecture's challenges).

:func:`robustness` perturbs every test image by each perturbation at each
severity (:func:`~imgclf.challenges.perturbations.perturb`, seeded) and scores
the model on them; the record it returns (:class:`RobustnessResult`) has
``to_records`` / ``to_json`` like :class:`~imgclf.model_selection.SearchResult`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from imgclf._progress import progress
from imgclf._validation import check_choice, check_int, final_estimator
from imgclf.challenges.calibration import l2_distances
from imgclf.challenges.perturbations import (
    PERTURBATIONS,
    check_images,
    check_severity,
    default_severities,
    perturb,
)

__all__ = ["RobustnessResult", "parse_perturbations", "plan", "robustness"]


@dataclass
class RobustnessResult:
    """Test accuracy of one model on clean and on perturbed test images.

    Attributes
    ----------
    model : str
        What the model is called in tables and legends.
    clean_accuracy : float
        On the unperturbed test images.
    perturbations : list of str
    severities : list of float
        One per row, with ``perturbations``.
    accuracy : ndarray, shape (n_rows,)
    distance : ndarray, shape (n_rows,)
        Mean L2 distance of the perturbed images from the originals (0-255 scale).
    n_test : int
    seed : int
    timings : dict
        Seconds spent perturbing, measuring distances and predicting.
    """

    model: str
    clean_accuracy: float
    perturbations: list[str]
    severities: list[float]
    accuracy: np.ndarray
    distance: np.ndarray
    n_test: int
    seed: int = 0
    timings: dict = field(default_factory=dict)

    def to_records(self) -> list[dict]:
        """One tidy row per perturbation and severity (the clean accuracy first, severity 0)."""
        clean = {"perturbation": "none", "severity": 0.0, "condition": "clean",
                 "accuracy": self.clean_accuracy, "mean_l2_distance": 0.0}  # fmt: skip
        rows = [
            {
                "perturbation": name,
                "severity": float(severity),
                "condition": PERTURBATIONS[name].describe(severity),
                "accuracy": float(accuracy),
                "mean_l2_distance": float(distance),
            }
            for name, severity, accuracy, distance in zip(
                self.perturbations, self.severities, self.accuracy, self.distance, strict=True
            )
        ]
        return [{"model": self.model, "n_test": self.n_test, **row} for row in [clean, *rows]]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "clean_accuracy": self.clean_accuracy,
            "n_test": self.n_test,
            "seed": self.seed,
            "results": self.to_records(),
            "timings": self.timings,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def curve(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Severities (0, the clean images, included) and accuracies of ``name``, by severity."""
        rows = [i for i, p in enumerate(self.perturbations) if p == name]
        if not rows:
            measured = ", ".join(sorted(set(self.perturbations)))
            raise ValueError(f"{name!r} was not measured; measured: {measured}")
        severity = np.array([0.0, *(self.severities[i] for i in rows)])
        accuracy = np.array([self.clean_accuracy, *self.accuracy[rows]])
        order = np.argsort(severity, kind="stable")
        return severity[order], accuracy[order]


def plan(perturbations=None, severities=None, image_shape=(32, 32, 3)) -> dict[str, tuple]:
    """Perturbation name -> severities to measure, checked.

    ``perturbations``: names (default: every one of :data:`PERTURBATIONS`), or a
    mapping name -> severities. ``severities``: the same list for every name, or a
    mapping; a name without any takes :func:`default_severities` for ``image_shape``.
    """
    if isinstance(perturbations, Mapping):
        severities, perturbations = perturbations, list(perturbations)
    names = list(PERTURBATIONS) if perturbations is None else list(perturbations)
    if not names:
        raise ValueError("perturbations is empty; choose from " + ", ".join(PERTURBATIONS))
    chosen = {}
    for name in names:
        check_choice("perturbation", name, PERTURBATIONS)
        given = severities.get(name) if isinstance(severities, Mapping) else severities
        levels = default_severities(name, image_shape) if given is None else tuple(given)
        if not levels:
            raise ValueError(f"no severities given for {name}")
        chosen[name] = tuple(check_severity(name, s) for s in levels)
    return chosen


def parse_perturbations(texts) -> dict | None:
    """Perturbations as the command line writes them: name -> severities (None: defaults).

    Each text is either names separated by commas (``"shift,flip"``: their
    default severities) or one name with its severities (``"shift=1,2,4"``).
    None or no texts: None (every perturbation).

    >>> parse_perturbations(["shift=1,2,4", "flip,occlude"])
    {'shift': (1.0, 2.0, 4.0), 'flip': None, 'occlude': None}
    """
    if not texts:
        return None
    chosen: dict = {}
    for text in texts:
        name, sep, values = text.partition("=")
        if sep:
            chosen[name.strip()] = tuple(_severity_value(text, v) for v in values.split(","))
        else:
            chosen |= {n.strip(): None for n in text.split(",") if n.strip()}
    for name, severities in chosen.items():
        check_choice("perturbation", name, PERTURBATIONS)
        for severity in severities or ():
            check_severity(name, severity)
    return chosen


def _severity_value(text: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"--perturbations {text!r}: severities must be numbers after '=' "
            f"(e.g. shift=1,2,4); got {value!r}"
        ) from None


def _model_name(model) -> str:
    estimator = final_estimator(model)
    return type(estimator).__name__


def robustness(
    model,
    test,
    perturbations=None,
    severities=None,
    *,
    seed: int = 0,
    name: str | None = None,
) -> RobustnessResult:
    """Accuracy of a fitted ``model`` on ``test`` perturbed by each perturbation and severity.

    Parameters
    ----------
    model : estimator
        Fitted on flattened images (``predict`` takes ``(n, H*W*C)`` rows, as
        every imgclf model and pipeline does) with labels in ``test``'s numbering.
    test : Dataset or (images, labels)
        ``images`` uint8 ``(n, H, W, C)``, ``labels`` ``(n,)``.
    perturbations : sequence of str or mapping, optional
        See :func:`plan`. Default: every perturbation.
    severities : sequence of float or mapping, optional
        See :func:`plan`. Default: three per perturbation.
    seed : int, default=0
        The perturbations' random choices.
    name : str, optional
        The model's name in records and legends (default: its class name).

    Returns
    -------
    RobustnessResult

    Examples
    --------
    >>> from imgclf.datasets import load_digits
    >>> from imgclf.neighbors import KNNClassifier
    >>> digits = load_digits()
    >>> knn = KNNClassifier(k=1).fit(digits["train"].X, digits["train"].labels)
    >>> result = robustness(knn, digits["test"], {"shift": [1, 2]})
    >>> [(r["condition"], round(r["accuracy"], 2)) for r in result.to_records()]
    [('clean', 0.99), ('shift 1 px', 0.69), ('shift 2 px', 0.15)]
    """
    images, labels = _test_arrays(test)
    seed = check_int("seed", seed, low=0)
    chosen = plan(perturbations, severities, images.shape[1:])
    timings = {"perturb_s": 0.0, "distance_s": 0.0, "predict_s": 0.0}
    clean = _accuracy(model, images, labels, timings)
    rows = [(n, s) for n, levels in chosen.items() for s in levels]
    accuracy, distance = np.zeros(len(rows)), np.zeros(len(rows))
    for i, (perturbation, severity) in enumerate(progress(rows, len(rows), "Perturbing")):
        start = time.perf_counter()
        moved = perturb(images, perturbation, severity, seed=seed)
        middle = time.perf_counter()
        distance[i] = l2_distances(moved, images).mean() if len(images) else 0.0
        timings["perturb_s"] += middle - start
        timings["distance_s"] += time.perf_counter() - middle
        accuracy[i] = _accuracy(model, moved, labels, timings)
    return RobustnessResult(
        model=name or _model_name(model),
        clean_accuracy=clean,
        perturbations=[n for n, _ in rows],
        severities=[s for _, s in rows],
        accuracy=accuracy,
        distance=distance,
        n_test=len(images),
        seed=seed,
        timings=timings,
    )


def _test_arrays(test) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(test, Sequence) and len(test) == 2:
        images, labels = test
    else:
        images, labels = getattr(test, "images", None), getattr(test, "labels", None)
        if images is None:
            raise ValueError("test must be a Dataset of images or a pair (images, labels)")
    images, labels = check_images(images, "test images"), np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(
            f"test labels must have shape ({len(images)},), one per image; got {labels.shape}"
        )
    return images, labels


def _accuracy(model, images: np.ndarray, labels: np.ndarray, timings: dict) -> float:
    start = time.perf_counter()
    predicted = model.predict(images.reshape(len(images), -1))
    timings["predict_s"] += time.perf_counter() - start
    return float(np.mean(predicted == labels)) if len(labels) else float("nan")
