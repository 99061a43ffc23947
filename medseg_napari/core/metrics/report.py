"""Metrics as JSON-ready dicts and CSV files (infinite values become null / empty cells).

JSON and CSV cannot hold infinity portably, so an infinite distance (one mask
empty) is written as ``null`` (JSON) or an empty cell (CSV); the ``empty``
field says which mask was empty (``"prediction"``, ``"reference"`` or ``"both"``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from typing import Any

from medseg_napari.core.atomic import atomic_output
from medseg_napari.core.metrics.evaluate import METRIC_NAMES, LabelMetrics

__all__ = ["CSV_COLUMNS", "metrics_to_json", "metrics_to_rows", "write_metrics_csv"]

#: Columns of the metrics CSV, in order.
CSV_COLUMNS = ("case", "label", "name", *METRIC_NAMES, "tp", "fp", "fn", "tolerance_mm", "surface", "empty")


def metrics_to_json(records: Sequence[LabelMetrics], **extra: Any) -> dict[str, Any]:
    """``{"labels": {"1": {"dice": .., "iou": .., "hd": .., ...}, ..}, **extra}``.

    Each label's dict has the metrics of :data:`~medseg_napari.core.metrics.evaluate.METRIC_NAMES`
    followed by ``name``, ``tp``, ``fp``, ``fn`` and ``empty``; infinite values are ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from medseg_napari.core.metrics.evaluate import evaluate_labels
    >>> ref = np.zeros((4, 4, 4), np.uint8); ref[1:3, 1:3, 1:3] = 1
    >>> out = metrics_to_json(evaluate_labels(np.zeros_like(ref), ref, spacing=(1, 1, 1)))
    >>> out["labels"]["1"]["hd"], out["labels"]["1"]["dice"], out["labels"]["1"]["empty"]
    (None, 0.0, 'prediction')
    """
    labels = {}
    for record in records:
        d = record.to_dict()
        labels[str(record.label)] = {
            **{k: d[k] for k in METRIC_NAMES},
            **{k: d[k] for k in ("name", "tp", "fp", "fn", "empty")},
        }
    return {"labels": labels, **extra}


def metrics_to_rows(cases: Mapping[str, Sequence[LabelMetrics]]) -> list[dict[str, Any]]:
    """One CSV row (a dict over :data:`CSV_COLUMNS`) per case and label; ``None`` for infinite values."""
    rows = []
    for case, records in cases.items():
        for record in records:
            d = record.to_dict()
            rows.append({"case": case, **{k: d[k] for k in CSV_COLUMNS if k != "case"}})
    return rows


def write_metrics_csv(path: str | os.PathLike, cases: Mapping[str, Sequence[LabelMetrics]]) -> None:
    """Write per-case, per-label metrics to ``path`` atomically (``None`` -> empty cell).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from medseg_napari.core.metrics.evaluate import evaluate_labels
    >>> ref = np.zeros((4, 4, 4), np.uint8); ref[1:3, 1:3, 1:3] = 1
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> write_metrics_csv(target, {"case1": evaluate_labels(ref, ref, spacing=(1, 1, 1))})
    >>> target.read_text().splitlines()[0].split(",")[:4]
    ['case', 'label', 'name', 'dice']
    """
    rows = metrics_to_rows(cases)
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
