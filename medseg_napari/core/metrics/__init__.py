"""Segmentation metrics in mm: overlap (Dice, IoU, ...) and surface distances."""

from medseg_napari.core.metrics.overlap import dice_scores

__all__ = ["dice_scores"]
