"""Overlap metrics between a predicted and a reference label map."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["dice_scores"]


def dice_scores(
    prediction: np.ndarray, reference: np.ndarray, *, labels: Iterable[int] | None = None
) -> dict[int, float]:
    """Dice per label, ``2 |P & R| / (|P| + |R|)``; 1.0 when both masks are empty.

    Parameters
    ----------
    prediction, reference : ndarray
        Integer label maps of the same shape.
    labels : iterable of int, optional
        Labels to score (default: every non-zero value in either map).

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([0, 1, 1, 2]); r = np.array([0, 1, 2, 2])
    >>> dice_scores(p, r)
    {1: 0.6666666666666666, 2: 0.6666666666666666}
    """
    prediction = np.asarray(prediction)
    reference = np.asarray(reference)
    if prediction.shape != reference.shape:
        raise ValueError(f"shapes differ: {prediction.shape} and {reference.shape}")
    if labels is None:
        labels = sorted((set(np.unique(prediction).tolist()) | set(np.unique(reference).tolist())) - {0})
    labels = [int(v) for v in labels]
    n = int(max(prediction.max(initial=0), reference.max(initial=0), *labels, 0)) + 1
    # One joint histogram gives every label's intersection and sizes in a single pass.
    joint = np.bincount(
        prediction.ravel().astype(np.int64) * n + reference.ravel().astype(np.int64), minlength=n * n
    )
    joint = joint.reshape(n, n)
    pred_sizes, ref_sizes = joint.sum(axis=1), joint.sum(axis=0)
    scores = {}
    for label in labels:
        denom = pred_sizes[label] + ref_sizes[label]
        scores[int(label)] = 1.0 if denom == 0 else float(2 * joint[label, label] / denom)
    return scores
