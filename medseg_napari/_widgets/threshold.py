"""Threshold widget: a range slider with a live preview, Otsu, multi-Otsu, Apply into a label.

Thin: the masks come from :mod:`medseg_napari.core.classical.threshold`; the
write goes through napari's undo history (:mod:`medseg_napari._widgets._undo`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from medseg_napari._napari.layers import labels_layer_data, volume_from_layer
from medseg_napari._widgets._common import LayerPicker, report_error
from medseg_napari._widgets._undo import PREVIEW_KEY, LabelTarget, UndoButtons, apply_edit
from medseg_napari.core.classical.editing import write_mask
from medseg_napari.core.classical.threshold import (
    check_range,
    multi_otsu_thresholds,
    otsu_threshold,
    range_mask,
)
from medseg_napari.core.errors import MedsegError

__all__ = ["ThresholdWidget"]


class ThresholdWidget(QWidget):
    """Pick an image, drag the range (live preview), or ask Otsu; Apply writes a label."""

    PREVIEW_NAME = "threshold preview"

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.preview: Labels | None = None

        self.image = LayerPicker(napari_viewer, Image)
        self.slider = QLabeledDoubleRangeSlider(Qt.Horizontal)
        self.slider.setDecimals(1)
        self.slider.setToolTip("Inclusive intensity range [low, high]")
        self.live = QCheckBox("Live preview")
        self.live.setChecked(True)
        self.otsu_button = QPushButton("Otsu")
        self.otsu_button.setToolTip("Set the range to the voxels above Otsu's threshold")
        self.classes = QSpinBox()
        self.classes.setRange(2, 6)
        self.classes.setValue(3)
        self.classes.setPrefix("classes ")
        self.which = QSpinBox()
        self.which.setRange(1, 3)
        self.which.setValue(3)
        self.which.setPrefix("keep ")
        self.which.setToolTip("Which class to keep (1 = darkest)")
        self.classes.valueChanged.connect(self._on_classes)
        self.multi_button = QPushButton("Multi-Otsu")
        self.multi_button.setToolTip("Split the histogram into classes; set the range to the chosen class")
        self.target = LabelTarget(napari_viewer)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Write the voxels in range into the label (undo: Ctrl+Z or Undo)")
        self.undo = UndoButtons(lambda: self.target.layers.layer())
        self.status = QLabel("")
        self.status.setWordWrap(True)

        source = QFormLayout()
        source.addRow("Image", self.image)
        source.addRow("Range", self.slider)
        auto = QHBoxLayout()
        auto.addWidget(self.otsu_button)
        auto.addWidget(self.classes)
        auto.addWidget(self.which)
        auto.addWidget(self.multi_button)
        box = QGroupBox("Threshold")
        inner = QVBoxLayout(box)
        inner.addLayout(source)
        inner.addLayout(auto)
        inner.addWidget(self.live)
        out = QGroupBox("Write into")
        out_layout = QVBoxLayout(out)
        out_layout.addWidget(self.target)
        out_layout.addWidget(self.apply_button)
        out_layout.addWidget(self.undo)
        layout = QVBoxLayout(self)
        layout.addWidget(box)
        layout.addWidget(out)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(30)  # coalesce slider drags into one preview per 30 ms
        self._timer.timeout.connect(self.update_preview)
        self.slider.valueChanged.connect(self._schedule_preview)
        self.live.toggled.connect(self._on_live)
        self.image.currentIndexChanged.connect(self._on_image)
        self.otsu_button.clicked.connect(self.set_otsu)
        self.multi_button.clicked.connect(self.set_multi_otsu)
        self.apply_button.clicked.connect(self.apply)
        self._on_image()

    # ------------------------------------------------------------------ helpers
    def _fail(self, error: BaseException) -> None:
        self.status.setText(report_error(error))

    def _image(self) -> Image:
        layer = self.image.layer()
        if layer is None:
            raise MedsegError("add or choose a 3D image layer first")
        return layer

    def _on_classes(self, value: int) -> None:
        self.which.setRange(1, value)
        self.which.setValue(value)

    def _on_image(self, *_: Any) -> None:
        layer = self.image.layer()
        if layer is None:
            return
        data = np.asarray(layer.data)
        lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
        if hi <= lo:
            hi = lo + 1.0
        self.slider.blockSignals(True)
        self.slider.setRange(lo, hi)
        self.slider.setValue((lo + (hi - lo) / 2, hi))
        self.slider.blockSignals(False)
        if self.preview is not None:  # no preview layer until the user moves the range
            self._schedule_preview()

    def _on_live(self, on: bool) -> None:
        if on:
            self.update_preview()
        elif self.preview is not None and self.preview in self.viewer.layers:
            self.preview.visible = False

    def _schedule_preview(self, *_: Any) -> None:
        if self.live.isChecked():
            self._timer.start()

    def range(self) -> tuple[float, float]:
        """The slider's range ``(low, high)``."""
        low, high = self.slider.value()
        return check_range(low, high)

    def mask(self) -> np.ndarray:
        """The voxels of the image in the current range."""
        low, high = self.range()
        return range_mask(np.asarray(self._image().data), low=low, high=high)

    # ------------------------------------------------------------------ actions
    def update_preview(self) -> None:
        """Show the voxels in range in the preview layer (made on the image grid if needed)."""
        if self.image.layer() is None:
            return  # nothing to preview (e.g. the image was just removed)
        try:
            image = self._image()
            mask = self.mask().view(np.uint8)
        except MedsegError as error:
            self._fail(error)
            return
        preview = self.preview
        if preview is None or preview not in self.viewer.layers or preview.data.shape != mask.shape:
            if preview is not None and preview in self.viewer.layers:
                self.viewer.layers.remove(preview)
            volume = volume_from_layer(image).with_array(mask)
            data, kwargs, _ = labels_layer_data(volume, name=self.PREVIEW_NAME)
            kwargs["metadata"][PREVIEW_KEY] = True
            self.preview = self.viewer.add_labels(data, opacity=0.5, **kwargs)
            self.image.set_layer(image)
        else:
            preview.data = mask
            preview.visible = True
        low, high = self.range()
        self.status.setText(f"[{low:.6g}, {high:.6g}]: {int(mask.sum())} voxels")

    def set_otsu(self) -> None:
        """Set the range to ``(Otsu's threshold, max]``."""
        try:
            t = otsu_threshold(np.asarray(self._image().data))
        except MedsegError as error:
            self._fail(error)
            return
        self.slider.setValue((min(t, self.slider.maximum()), self.slider.maximum()))
        self.status.setText(f"Otsu threshold {t:.6g}")

    def set_multi_otsu(self) -> None:
        """Set the range to the chosen multi-Otsu class."""
        try:
            ts = multi_otsu_thresholds(np.asarray(self._image().data), classes=self.classes.value())
        except MedsegError as error:
            self._fail(error)
            return
        bounds = [self.slider.minimum(), *ts.tolist(), self.slider.maximum()]
        k = self.which.value()
        self.slider.setValue((bounds[k - 1], bounds[k]))
        self.status.setText(f"multi-Otsu thresholds {', '.join(f'{t:.6g}' for t in ts)}; class {k}")

    def apply(self) -> int:
        """Write the voxels in range into the chosen label; return the number of voxels changed."""
        try:
            image = self._image()
            mask = self.mask()
            layer = self.target.checked(image)
            if layer is None:
                layer = self.target.create(image)
            label = self.target.value.value()
            edit = write_mask(np.asarray(layer.data), mask, label=label, in_place=False, description="threshold")
        except MedsegError as error:
            self._fail(error)
            return 0
        changed = apply_edit(layer, edit)
        self.status.setText(f"label {label} of '{layer.name}': {changed} voxels changed")
        return changed
