"""Volume widget: the selected image's geometry, labels on its grid, safe saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medseg_napari._napari.layers import geometry_of_layer, new_labels_for, volume_from_layer
from medseg_napari._widgets._common import LayerPicker, report_error
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.geometry import check_same_grid
from medseg_napari.core.io import WRITE_EXTENSIONS, write_volume

__all__ = ["VolumeWidget"]


def _fmt(values: Any, digits: int = 4) -> str:
    return ", ".join(f"{float(v):.{digits}g}" for v in values)


class VolumeWidget(QWidget):
    """Shows an image's grid (ITK order, as the CLI and other tools print it), makes
    labels on exactly that grid, and saves labels with the image's geometry."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.image_picker = LayerPicker(napari_viewer, Image)
        self.labels_picker = LayerPicker(napari_viewer, Labels)

        info = QGroupBox("Image grid (x, y, z)")
        form = QFormLayout(info)
        self.size_label = QLabel("-")
        self.spacing_label = QLabel("-")
        self.origin_label = QLabel("-")
        self.direction_label = QLabel("-")
        self.range_label = QLabel("-")
        for label in (self.size_label, self.spacing_label, self.origin_label, self.direction_label, self.range_label):
            label.setWordWrap(True)
        form.addRow("size", self.size_label)
        form.addRow("spacing (mm)", self.spacing_label)
        form.addRow("origin (mm)", self.origin_label)
        form.addRow("direction", self.direction_label)
        form.addRow("values", self.range_label)

        self.new_button = QPushButton("New labels on this image")
        self.new_button.setToolTip("An empty labels layer on exactly the image's grid (oblique grids included)")
        self.new_button.clicked.connect(self.new_labels)
        self.save_button = QPushButton("Save labels...")
        self.save_button.setToolTip("Save the labels with the image's spacing, origin and direction")
        self.save_button.clicked.connect(self._save_dialog)

        layout = QVBoxLayout(self)
        image_row = QHBoxLayout()
        image_row.addWidget(QLabel("Image"))
        image_row.addWidget(self.image_picker, 1)
        layout.addLayout(image_row)
        layout.addWidget(info)
        layout.addWidget(self.new_button)
        labels_row = QHBoxLayout()
        labels_row.addWidget(QLabel("Labels"))
        labels_row.addWidget(self.labels_picker, 1)
        layout.addLayout(labels_row)
        layout.addWidget(self.save_button)
        layout.addStretch(1)

        self.image_picker.currentIndexChanged.connect(self._show_geometry)
        self._show_geometry()

    def _show_geometry(self, *_: Any) -> None:
        layer = self.image_picker.layer()
        if layer is None:
            for label in (self.size_label, self.spacing_label, self.origin_label, self.direction_label, self.range_label):
                label.setText("-")
            return
        geometry = geometry_of_layer(layer)
        self.size_label.setText(" x ".join(str(s) for s in layer.data.shape[::-1]))
        self.spacing_label.setText(_fmt(geometry.itk_spacing))
        self.origin_label.setText(_fmt(geometry.itk_origin))
        d = np.array(geometry.itk_direction).reshape(3, 3)
        self.direction_label.setText(
            "identity" if np.allclose(d, np.eye(3)) else " / ".join(_fmt(row, 3) for row in d)
        )
        lo, hi = layer.contrast_limits_range
        self.range_label.setText(f"{lo:.5g} to {hi:.5g} ({layer.data.dtype})")

    def new_labels(self) -> Labels | None:
        """Add an empty labels layer on the chosen image's grid."""
        image = self.image_picker.layer()
        if image is None:
            report_error("open an image first")
            return None
        labels = new_labels_for(self.viewer, image)
        self.labels_picker.set_layer(labels)
        self.viewer.layers.selection.active = labels
        return labels

    def _save_dialog(self) -> None:
        labels = self.labels_picker.layer()
        if labels is None:
            report_error("no labels layer to save")
            return
        filters = ";;".join(f"{ext} (*{ext})" for ext in WRITE_EXTENSIONS)
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", f"{labels.name}.nii.gz", filters)
        if path:
            self.save_labels(path)

    def save_labels(self, path: str | Path) -> bool:
        """Save the chosen labels with the chosen image's geometry; ``False`` on error."""
        labels, image = self.labels_picker.layer(), self.image_picker.layer()
        try:
            if labels is None or image is None:
                raise MedsegError("choose an image and a labels layer to save")
            target = volume_from_layer(image)
            check_same_grid(
                labels.data.shape,
                geometry_of_layer(labels),
                target.shape,
                target.geometry,
                what=f"labels '{labels.name}'",
                other=f"image '{image.name}'",
            )
            data = np.asarray(labels.data)
            if data.size and data.min() >= 0 and data.max() < 256:
                data = data.astype(np.uint8)
            write_volume(data, path, geometry=target.geometry)
        except MedsegError as error:
            report_error(error)
            return False
        show_info(f"saved {Path(path).name} with the geometry of '{image.name}'")
        return True
