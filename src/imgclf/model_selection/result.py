"""The result of a hyperparameter search: scores per configuration and fold."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SearchResult"]


@dataclass
class SearchResult:
    """Validation scores of every configuration on every fold.

    Attributes
    ----------
    configs : list of dict
        One dict of hyperparameters per configuration.
    scores : ndarray, shape (n_configs, n_folds)
        Validation accuracy of each configuration on each fold (one column
        for a fixed validation set).
    timings : dict
        Seconds spent per stage, for reports.
    """

    configs: list[dict]
    scores: np.ndarray
    timings: dict = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        """Mean score per configuration, shape (n_configs,)."""
        return self.scores.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation over folds per configuration (0 for a single fold)."""
        return self.scores.std(axis=1)

    @property
    def best_index(self) -> int:
        """The configuration with the highest mean; ties go to the first listed.

        A configuration whose training diverged scores NaN and is never the best;
        if every one diverged, that is an error, not a choice.
        """
        mean = self.mean
        if np.isnan(mean).all():
            raise ValueError(
                "every configuration diverged (NaN scores); try smaller learning rates"
            )
        return int(np.nanargmax(mean))

    @property
    def best_params(self) -> dict:
        return dict(self.configs[self.best_index])

    @property
    def best_score(self) -> float:
        return float(self.mean[self.best_index])

    def to_records(self) -> list[dict]:
        """One tidy row per configuration: its parameters, mean, std and fold scores."""
        return [
            {**config, "mean": float(m), "std": float(s), "folds": [float(v) for v in row]}
            for config, m, s, row in zip(
                self.configs, self.mean, self.std, self.scores, strict=True
            )
        ]

    def to_json(self) -> str:
        return json.dumps(
            {
                "best_params": self.best_params,
                "best_score": self.best_score,
                "results": self.to_records(),
                "timings": self.timings,
            },
            indent=2,
        )
