"""Per-label evaluation of a predicted label map against a reference, in mm.

Definitions (P = predicted voxels of a label, R = reference voxels; all
distances in mm using the voxel spacing; surfaces as in
:mod:`medseg_napari.core.metrics.surface`):

- TP = |P ∩ R|, FP = |P \\ R|, FN = |R \\ P| (voxel counts);
- Dice = 2 TP / (2 TP + FP + FN); IoU = TP / (TP + FP + FN);
- precision = TP / (TP + FP); recall = TP / (TP + FN);
- volume of prediction / reference in mL = voxel count x voxel volume / 1000;
- volume similarity = 1 - |P - R| / (P + R) (P and R as volumes);
- surface = mask voxels with a 6-neighbour outside the mask (``surface="voxel"``),
  or DeepMind's area-weighted marching-cubes elements (``surface="area"``);
- directed distances: from each surface voxel of one mask to the nearest surface
  voxel of the other, both ways (prediction -> reference and reference -> prediction);
- HD = the larger of the two directed maxima;
- HD95 = the larger of the two directed 95th percentiles (linear interpolation,
  as ``numpy.percentile`` and ``torch.quantile``; area-weighted in ``"area"`` mode:
  the smallest distance whose cumulative surface area reaches 95 %, as DeepMind's);
- ASSD = mean of both directed distance sets pooled;
- MASD = mean of the two directed means;
- NSD = fraction of both surfaces (elements, or area) within the tolerance
  (distance <= ``tolerance_mm``).

With ``surface="voxel"`` these equal MONAI's ``compute_hausdorff_distance``
(``percentile=95`` for HD95), ``compute_average_surface_distance(symmetric=True)``
and ``compute_surface_dice`` given the same ``spacing`` (checked in the tests).

Empty masks (the Metrics Reloaded policy, Maier-Hein et al. 2024):

- both empty: Dice, IoU, precision, recall, volume similarity and NSD are 1;
  every distance is 0;
- one empty: Dice, IoU, precision, recall, volume similarity and NSD are 0;
  every distance is infinite (``null`` in JSON, with ``"empty"`` naming the
  empty mask: ``"prediction"`` or ``"reference"``).

Such cases are reported, counted in aggregates and never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from medseg_napari.core.errors import GeometryMismatchError
from medseg_napari.core.geometry import grids_overlap
from medseg_napari.core.metrics.surface import SurfaceMode, directed_distances, occupied_boxes, surface_of
from medseg_napari.core.progress import CancelToken, ProgressCallback, ProgressTimer
from medseg_napari.core.volume import Volume

__all__ = [
    "DISTANCE_METRICS",
    "METRIC_NAMES",
    "SCORE_METRICS",
    "LabelMetrics",
    "error_map",
    "evaluate_labels",
    "evaluate_volumes",
    "most_errors_slice",
    "surface_metrics",
]

#: Metrics where higher is better (1 is perfect).
SCORE_METRICS = ("dice", "iou", "precision", "recall", "volume_similarity", "nsd")
#: Metrics in mm where lower is better (0 is perfect).
DISTANCE_METRICS = ("hd", "hd95", "assd", "masd")
#: Every metric of a :class:`LabelMetrics`, in table order.
METRIC_NAMES = (
    "dice",
    "iou",
    "hd",
    "hd95",
    "assd",
    "masd",
    "nsd",
    "volume_pred_ml",
    "volume_ref_ml",
    "volume_similarity",
    "precision",
    "recall",
)


@dataclass(frozen=True)
class LabelMetrics:
    """Every metric of one label (see the module docstring for the definitions).

    ``empty`` is ``None`` when both masks have voxels, else ``"both"``,
    ``"prediction"`` or ``"reference"``. Distances are ``inf`` when one mask is empty.
    """

    label: int
    name: str
    tp: int
    fp: int
    fn: int
    dice: float
    iou: float
    precision: float
    recall: float
    volume_pred_ml: float
    volume_ref_ml: float
    volume_similarity: float
    hd: float
    hd95: float
    assd: float
    masd: float
    nsd: float
    tolerance_mm: float
    surface: str
    empty: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: infinite or NaN values become ``None``; ``empty`` says why."""
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()
        }

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the fields, in order (CSV columns)."""
        return [f.name for f in fields(cls)]


def _ratio(num: float, den: float, *, both_empty: bool) -> float:
    """``num / den`` with the empty-mask policy: 1 when both masks are empty, 0 for 0/0 otherwise."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num / den)


def surface_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing: Sequence[float],
    tolerance_mm: float = 1.0,
    surface: SurfaceMode = "voxel",
    offset: Sequence[int] = (0, 0, 0),
) -> dict[str, float]:
    """HD, HD95, ASSD, MASD and NSD of two binary masks, from one pair of directed distance arrays.

    Parameters
    ----------
    pred, ref : ndarray of bool, 3D
        Masks on the same grid.
    spacing : sequence of 3 float
        Voxel spacing (z, y, x) in mm.
    tolerance_mm : float
        NSD tolerance in mm.
    surface : {"voxel", "area"}
        Surface definition (see :mod:`medseg_napari.core.metrics.surface`).
    offset : sequence of int
        Position of the masks in a larger array (only changes nothing but indices).

    Returns
    -------
    dict
        ``hd``, ``hd95``, ``assd``, ``masd``, ``nsd`` (empty masks: see the module docstring).

    Examples
    --------
    >>> a = np.zeros((1, 1, 8), bool); a[0, 0, 1:3] = True
    >>> b = np.zeros((1, 1, 8), bool); b[0, 0, 4:6] = True
    >>> surface_metrics(a, b, spacing=(1, 1, 0.5))["hd"]
    1.5
    """
    spacing = tuple(float(s) for s in spacing)
    sp = surface_of(pred, mode=surface, spacing=spacing, offset=offset)
    sr = surface_of(ref, mode=surface, spacing=spacing, offset=offset)
    if sp.size == 0 and sr.size == 0:
        return {"hd": 0.0, "hd95": 0.0, "assd": 0.0, "masd": 0.0, "nsd": 1.0}
    if sp.size == 0 or sr.size == 0:
        return {"hd": np.inf, "hd95": np.inf, "assd": np.inf, "masd": np.inf, "nsd": 0.0}
    d_pr = directed_distances(sp, sr, spacing=spacing)
    d_rp = directed_distances(sr, sp, spacing=spacing)
    w_p, w_r = sp.weights, sr.weights
    if surface == "voxel":
        hd95 = max(float(np.percentile(d_pr, 95)), float(np.percentile(d_rp, 95)))
        within = np.count_nonzero(d_pr <= tolerance_mm) + np.count_nonzero(d_rp <= tolerance_mm)
        nsd = within / (d_pr.size + d_rp.size)
    else:
        hd95 = max(_weighted_percentile(d_pr, w_p, 95), _weighted_percentile(d_rp, w_r, 95))
        nsd = (w_p[d_pr <= tolerance_mm].sum() + w_r[d_rp <= tolerance_mm].sum()) / (w_p.sum() + w_r.sum())
    return {
        "hd": float(max(d_pr.max(), d_rp.max())),
        "hd95": hd95,
        "assd": float((np.dot(d_pr, w_p) + np.dot(d_rp, w_r)) / (w_p.sum() + w_r.sum())),
        "masd": float((np.dot(d_pr, w_p) / w_p.sum() + np.dot(d_rp, w_r) / w_r.sum()) / 2),
        "nsd": float(nsd),
    }


def _weighted_percentile(distances: np.ndarray, weights: np.ndarray, percent: float) -> float:
    """DeepMind's robust Hausdorff: the first sorted distance whose cumulative area share reaches ``percent``."""
    order = np.argsort(distances)
    cum = np.cumsum(weights[order]) / weights.sum()
    idx = min(int(np.searchsorted(cum, percent / 100.0)), distances.size - 1)
    return float(distances[order][idx])


def _label_boxes(array: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{label: (start, stop)}`` of every positive label.

    The occupied parts of the map are boxed first with cheap axis projections
    (:func:`~medseg_napari.core.metrics.surface.occupied_boxes`), then one
    ``scipy.ndimage.find_objects`` pass inside each box gives every label's
    box at once; so empty space between distant parts is not scanned again.
    """
    positive = array > 0
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for part in occupied_boxes(positive):
        sub = array[part]
        if np.issubdtype(sub.dtype, np.signedinteger):
            sub = np.where(positive[part], sub, 0)
        start = np.array([s.start for s in part])
        for i, box in enumerate(ndimage.find_objects(sub)):
            if box is None:
                continue
            lo = np.array([s.start for s in box]) + start
            hi = np.array([s.stop for s in box]) + start
            if i + 1 in out:
                lo, hi = np.minimum(out[i + 1][0], lo), np.maximum(out[i + 1][1], hi)
            out[i + 1] = (lo, hi)
    return out


def _as_label_array(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3:
        raise GeometryMismatchError(f"the {what} must be a 3D label map, got shape {array.shape}")
    if array.dtype == bool:
        return array.view(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise ValueError(f"the {what} has non-integer values; a label map is needed")
        array = rounded.astype(np.int32)
    return array


def evaluate_labels(
    prediction: np.ndarray,
    reference: np.ndarray,
    *,
    spacing: Sequence[float],
    labels: Iterable[int] | None = None,
    tolerance_mm: float = 1.0,
    surface: SurfaceMode = "voxel",
    label_names: Mapping[int, str] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[LabelMetrics]:
    """Every metric per label of a prediction against a reference on the same grid.

    Definitions and the empty-mask policy are in the module docstring. Work is
    done inside the bounding box of the union of both masks of each label; all
    labels' boxes are found in one pass (``scipy.ndimage.find_objects``), and
    every distance metric comes from one pair of directed distance arrays.

    Parameters
    ----------
    prediction, reference : ndarray of int, 3D
        Label maps of the same shape (z, y, x).
    spacing : sequence of 3 float
        Voxel spacing (z, y, x) in mm.
    labels : iterable of int, optional
        Labels to evaluate (default: every positive value in either map). A
        label absent from both maps is reported as "both empty".
    tolerance_mm : float
        NSD tolerance in mm (default 1).
    surface : {"voxel", "area"}
        Surface voxels (default; equals MONAI) or area-weighted elements (DeepMind).
    label_names : mapping, optional
        ``{label: name}`` for the records' ``name``.
    progress, cancel
        Progress callback and cancel token (one step per label).

    Returns
    -------
    list of LabelMetrics
        One per label, in label order.

    Examples
    --------
    >>> ref = np.zeros((10, 10, 10), np.uint8); ref[2:6, 2:6, 2:6] = 1
    >>> pred = np.roll(ref, 1, axis=2)
    >>> m = evaluate_labels(pred, ref, spacing=(2.0, 1.0, 0.5))[0]
    >>> round(m.dice, 4), m.hd, m.empty
    (0.75, 0.5, None)
    """
    pred = _as_label_array(prediction, "prediction")
    ref = _as_label_array(reference, "reference")
    if pred.shape != ref.shape:
        raise GeometryMismatchError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (z, y, x) in mm, got {spacing}")
    if tolerance_mm < 0 or not np.isfinite(tolerance_mm):
        raise ValueError(f"tolerance must be a finite number >= 0 mm, got {tolerance_mm}")
    names = {int(k): str(v) for k, v in (label_names or {}).items()}
    voxel_ml = float(np.prod(spacing)) / 1000.0

    # Every label's box, for both maps, in one find_objects pass each.
    boxes_p = _label_boxes(pred)
    boxes_r = _label_boxes(ref)
    wanted = sorted(set(boxes_p) | set(boxes_r)) if labels is None else sorted({int(v) for v in labels})

    timer = ProgressTimer(len(wanted), progress) if progress is not None else None
    results = []
    for done, label in enumerate(wanted):
        if cancel is not None:
            cancel.raise_if_cancelled()
        results.append(
            _one_label(
                pred,
                ref,
                label,
                boxes_p.get(label),
                boxes_r.get(label),
                spacing,
                tolerance_mm,
                surface,
                voxel_ml,
                names,
            )
        )
        if timer is not None:
            timer.report(done + 1, f"label {label}")
    return results


def _one_label(
    pred: np.ndarray,
    ref: np.ndarray,
    label: int,
    box_p: tuple[np.ndarray, np.ndarray] | None,
    box_r: tuple[np.ndarray, np.ndarray] | None,
    spacing: tuple[float, ...],
    tolerance_mm: float,
    surface: SurfaceMode,
    voxel_ml: float,
    names: dict[int, str],
) -> LabelMetrics:
    name = names.get(label, str(label))
    if box_p is None and box_r is None:
        n_p = n_r = tp = 0
        dist = {"hd": 0.0, "hd95": 0.0, "assd": 0.0, "masd": 0.0, "nsd": 1.0}
    else:
        boxes = [b for b in (box_p, box_r) if b is not None]
        start = np.min([b[0] for b in boxes], axis=0)
        stop = np.max([b[1] for b in boxes], axis=0)
        window = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
        p = pred[window] == label
        r = ref[window] == label
        n_p, n_r = int(np.count_nonzero(p)), int(np.count_nonzero(r))
        tp = int(np.count_nonzero(p & r)) if n_p and n_r else 0
        dist = surface_metrics(
            p, r, spacing=spacing, tolerance_mm=tolerance_mm, surface=surface, offset=start
        )
    fp, fn = n_p - tp, n_r - tp
    both_empty = n_p == 0 and n_r == 0
    empty = "both" if both_empty else "prediction" if n_p == 0 else "reference" if n_r == 0 else None
    return LabelMetrics(
        label=int(label),
        name=name,
        tp=tp,
        fp=fp,
        fn=fn,
        dice=_ratio(2 * tp, 2 * tp + fp + fn, both_empty=both_empty),
        iou=_ratio(tp, tp + fp + fn, both_empty=both_empty),
        precision=_ratio(tp, tp + fp, both_empty=both_empty),
        recall=_ratio(tp, tp + fn, both_empty=both_empty),
        volume_pred_ml=n_p * voxel_ml,
        volume_ref_ml=n_r * voxel_ml,
        volume_similarity=1.0 - _ratio(abs(n_p - n_r), n_p + n_r, both_empty=False),
        tolerance_mm=float(tolerance_mm),
        surface=surface,
        empty=empty,
        **dist,
    )


def evaluate_volumes(
    prediction: Volume,
    reference: Volume,
    *,
    labels: Iterable[int] | None = None,
    tolerance_mm: float = 1.0,
    surface: SurfaceMode = "voxel",
    label_names: Mapping[int, str] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[LabelMetrics]:
    """:func:`evaluate_labels` on two volumes, using the prediction's spacing.

    A reference on another grid is resampled onto the prediction's grid by
    physical coordinates (nearest neighbour) when the grids overlap; grids that
    do not overlap raise :class:`~medseg_napari.core.errors.GeometryMismatchError`.
    Label names come from ``label_names`` or either volume's
    ``metadata["label_names"]``.

    Examples
    --------
    >>> from medseg_napari.core.geometry import Geometry
    >>> a = np.zeros((4, 4, 4), np.uint8); a[1:3, 1:3, 1:3] = 1
    >>> pred = Volume(a, Geometry(spacing=(2, 1, 1)))
    >>> evaluate_volumes(pred, pred)[0].hd
    0.0
    """
    if not prediction.same_grid_as(reference):
        if not grids_overlap(prediction.shape, prediction.geometry, reference.shape, reference.geometry):
            raise GeometryMismatchError(
                "the prediction and the reference do not overlap in physical space "
                f"(prediction {prediction.geometry.describe()}; reference {reference.geometry.describe()})"
            )
        reference = reference.resampled_onto(prediction, interpolation="nearest")
    names: dict[int, str] = {}
    for source in (
        reference.metadata.get("label_names"),
        prediction.metadata.get("label_names"),
        label_names,
    ):
        if source:
            names.update({int(k): str(v) for k, v in dict(source).items()})
    return evaluate_labels(
        prediction.array,
        reference.array,
        spacing=prediction.spacing,
        labels=labels,
        tolerance_mm=tolerance_mm,
        surface=surface,
        label_names=names,
        progress=progress,
        cancel=cancel,
    )


def error_map(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Where the prediction differs from the reference: 1 false positive, 2 false negative.

    A voxel where ``prediction != reference`` is a false positive (1) when the
    prediction has a label there (a wrong label counts as a false positive of
    the predicted label), and a false negative (2) when the prediction is
    background. So ``error_map(p, r) > 0`` is exactly ``p != r``.

    Examples
    --------
    >>> error_map(np.array([[[0, 1, 1, 2]]]), np.array([[[1, 1, 0, 1]]])).tolist()
    [[[2, 0, 1, 1]]]
    """
    prediction = np.asarray(prediction)
    reference = np.asarray(reference)
    if prediction.shape != reference.shape:
        raise GeometryMismatchError(
            f"prediction shape {prediction.shape} differs from reference shape {reference.shape}"
        )
    out = np.zeros(prediction.shape, dtype=np.uint8)
    wrong = prediction != reference
    out[wrong] = np.where(prediction[wrong] != 0, 1, 2)
    return out


def most_errors_slice(errors: np.ndarray, *, axis: int = 0) -> int | None:
    """Index along ``axis`` of the slice with the most error voxels (``None`` when there are none).

    Examples
    --------
    >>> e = np.zeros((3, 2, 2), np.uint8); e[2, 0, :] = 1; e[1, 0, 0] = 2
    >>> most_errors_slice(e)
    2
    """
    others = tuple(i for i in range(np.ndim(errors)) if i != axis)
    counts = np.count_nonzero(errors, axis=others)
    return int(np.argmax(counts)) if counts.max(initial=0) > 0 else None
