"""Summaries of per-label metrics over many cases: mean, median and worst case.

Empty-mask cases are never dropped: a case where one mask is empty has
infinite distances and scores of 0 (see :mod:`medseg_napari.core.metrics.evaluate`),
and they enter the mean, median and worst case like any other; so one missed
structure makes the mean HD infinite, which is the honest answer. Each summary
also counts the cases where both, only the prediction or only the reference
were empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg_napari.core.metrics.evaluate import DISTANCE_METRICS, METRIC_NAMES, SCORE_METRICS, LabelMetrics

__all__ = ["LabelSummary", "MetricSummary", "aggregate"]


@dataclass(frozen=True)
class MetricSummary:
    """Mean, median and worst value of one metric over cases (``worst_case`` names the case)."""

    mean: float
    median: float
    worst: float
    worst_case: str


@dataclass(frozen=True)
class LabelSummary:
    """One label's metrics over ``n_cases`` cases."""

    label: int
    name: str
    n_cases: int
    n_both_empty: int
    n_prediction_empty: int
    n_reference_empty: int
    metrics: dict[str, MetricSummary] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (infinite values become ``None``)."""

        def safe(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {
            "label": self.label,
            "name": self.name,
            "n_cases": self.n_cases,
            "n_both_empty": self.n_both_empty,
            "n_prediction_empty": self.n_prediction_empty,
            "n_reference_empty": self.n_reference_empty,
            "metrics": {
                k: {
                    "mean": safe(s.mean),
                    "median": safe(s.median),
                    "worst": safe(s.worst),
                    "worst_case": s.worst_case,
                }
                for k, s in self.metrics.items()
            },
        }


def aggregate(cases: Mapping[str, Sequence[LabelMetrics]]) -> list[LabelSummary]:
    """Per label, the mean, median and worst case of every metric over all cases.

    "Worst" is the lowest score (Dice, IoU, precision, recall, volume
    similarity, NSD) or the largest distance (HD, HD95, ASSD, MASD). Volumes
    have no worst direction; their "worst" is the largest volume.

    Parameters
    ----------
    cases : mapping
        ``{case name: [LabelMetrics, ...]}`` as returned by
        :func:`~medseg_napari.core.metrics.evaluate.evaluate_labels`.

    Returns
    -------
    list of LabelSummary
        One per label seen in any case, in label order.

    Examples
    --------
    >>> from medseg_napari.core.metrics.evaluate import evaluate_labels
    >>> ref = np.zeros((6, 6, 6), np.uint8); ref[1:4, 1:4, 1:4] = 1
    >>> cases = {"a": evaluate_labels(ref, ref, spacing=(1, 1, 1)),
    ...          "b": evaluate_labels(np.zeros_like(ref), ref, spacing=(1, 1, 1))}
    >>> s = aggregate(cases)[0]
    >>> s.n_cases, s.n_prediction_empty, s.metrics["dice"].mean, s.metrics["hd"].worst, s.metrics["hd"].worst_case
    (2, 1, 0.5, inf, 'b')
    """
    by_label: dict[int, list[tuple[str, LabelMetrics]]] = {}
    for case, records in cases.items():
        for record in records:
            by_label.setdefault(record.label, []).append((case, record))
    out = []
    for label in sorted(by_label):
        rows = by_label[label]
        names = [case for case, _ in rows]
        summaries = {}
        for metric in METRIC_NAMES:
            values = np.array([getattr(r, metric) for _, r in rows], dtype=np.float64)
            if metric in SCORE_METRICS:
                worst_i = int(np.argmin(values))
            elif metric in DISTANCE_METRICS:
                worst_i = int(np.argmax(values))
            else:
                worst_i = int(np.argmax(values))
            with np.errstate(invalid="ignore"):
                summaries[metric] = MetricSummary(
                    mean=float(np.mean(values)),
                    median=float(np.median(values)),
                    worst=float(values[worst_i]),
                    worst_case=names[worst_i],
                )
        empties = [r.empty for _, r in rows]
        out.append(
            LabelSummary(
                label=label,
                name=rows[0][1].name,
                n_cases=len(rows),
                n_both_empty=empties.count("both"),
                n_prediction_empty=empties.count("prediction"),
                n_reference_empty=empties.count("reference"),
                metrics=summaries,
            )
        )
    return out
