"""Segmentation metrics in mm: overlap (Dice, IoU, ...) and surface distances.

See :mod:`medseg_napari.core.metrics.evaluate` for the definitions and the
empty-mask policy. No Qt, napari or MONAI here (MONAI is only the tests' peer).
"""

from medseg_napari.core.metrics.aggregate import LabelSummary, MetricSummary, aggregate
from medseg_napari.core.metrics.evaluate import (
    DISTANCE_METRICS,
    METRIC_NAMES,
    SCORE_METRICS,
    LabelMetrics,
    error_map,
    evaluate_labels,
    evaluate_volumes,
    most_errors_slice,
    surface_metrics,
)
from medseg_napari.core.metrics.overlap import dice_scores
from medseg_napari.core.metrics.report import CSV_COLUMNS, metrics_to_json, metrics_to_rows, write_metrics_csv
from medseg_napari.core.metrics.surface import Surface, directed_distances, surface_of

__all__ = [
    "CSV_COLUMNS",
    "DISTANCE_METRICS",
    "METRIC_NAMES",
    "SCORE_METRICS",
    "LabelMetrics",
    "LabelSummary",
    "MetricSummary",
    "Surface",
    "aggregate",
    "dice_scores",
    "directed_distances",
    "error_map",
    "evaluate_labels",
    "evaluate_volumes",
    "metrics_to_json",
    "metrics_to_rows",
    "most_errors_slice",
    "surface_metrics",
    "surface_of",
    "write_metrics_csv",
]
