"""Region-growing widget: click seeds in a Points layer, press Grow, the region joins a label.

Seeds are world coordinates (mm); each is mapped to the image's voxel indices
with ``image.world_to_data``, so an oblique or anisotropic image is handled
exactly. Growing runs in a worker (:class:`JobPanel`); the result is written
into the chosen label through napari's undo history, adding to what the label
already holds (click more seeds and Grow again to add to it). "Preview" shows
the region in a preview layer without writing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels, Points
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medseg_napari._napari.layers import geometry_of_layer, labels_layer_data, volume_from_layer
from medseg_napari._widgets._common import JobPanel, LayerPicker, report_error
from medseg_napari._widgets._undo import PREVIEW_KEY, LabelTarget, UndoButtons, apply_edit
from medseg_napari.core.classical.editing import write_mask
from medseg_napari.core.classical.region_growing import GrownRegion, check_seeds, seeded_region
from medseg_napari.core.errors import MedsegError

__all__ = ["RegionGrowingWidget", "seeds_in_image"]


def seeds_in_image(points: Points, image: Image) -> np.ndarray:
    """The points of a Points layer as (z, y, x) voxel indices of ``image`` (through world space)."""
    data = np.asarray(points.data, dtype=float)
    if data.size == 0:
        raise MedsegError(f"no seed points in '{points.name}': click at least one seed inside the structure")
    if data.shape[1] != 3:
        raise MedsegError(f"the points layer '{points.name}' is {data.shape[1]}D; 3D seeds are needed")
    world = [np.asarray(points.data_to_world(p), dtype=float) for p in data]
    return np.array([np.asarray(image.world_to_data(w), dtype=float)[-3:] for w in world])


class RegionGrowingWidget(QWidget):
    """Seeds, tolerance, Grow (and Preview) into a label of a labels layer."""

    SEEDS_NAME = "seeds"
    PREVIEW_NAME = "region preview"

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.preview: Labels | None = None
        self.last: GrownRegion | None = None
        self._write_after = False

        self.image = LayerPicker(napari_viewer, Image)
        self.seeds = LayerPicker(napari_viewer, Points, allow_none=True)
        self.add_seeds_button = QPushButton("New seeds layer")
        self.add_seeds_button.setToolTip("Add a Points layer in 'add' mode: click seeds inside the structure")
        self.clear_seeds_button = QPushButton("Clear seeds")
        self.tolerance = QDoubleSpinBox()
        self.tolerance.setRange(0.0, 20.0)
        self.tolerance.setSingleStep(0.25)
        self.tolerance.setValue(2.5)
        self.tolerance.setSuffix(" SD")
        self.tolerance.setToolTip("Intensity range: mean +/- this many standard deviations around the seeds")
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.1, 50.0)
        self.radius.setValue(2.0)
        self.radius.setSuffix(" mm")
        self.radius.setToolTip("Half-size of the box around each seed where the statistics are taken")
        self.connectivity = QComboBox()
        self.connectivity.addItems(["6 (faces)", "26 (all)"])
        self.iterations = QSpinBox()
        self.iterations.setRange(0, 10)
        self.iterations.setToolTip("Confidence-connected iterations: re-estimate the range from the region")
        self.target = LabelTarget(napari_viewer)
        self.preview_button = QPushButton("Preview")
        self.grow_button = QPushButton("Grow")
        self.grow_button.setToolTip("Grow from the seeds and add the region to the label (undo: Ctrl+Z or Undo)")
        self.undo = UndoButtons(lambda: self.target.layers.layer())
        self.jobs = JobPanel()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        seeds_row = QHBoxLayout()
        seeds_row.addWidget(self.add_seeds_button)
        seeds_row.addWidget(self.clear_seeds_button)
        params = QFormLayout()
        params.addRow("Image", self.image)
        params.addRow("Seeds", self.seeds)
        params.addRow(seeds_row)
        params.addRow("Tolerance", self.tolerance)
        params.addRow("Seed radius", self.radius)
        params.addRow("Connectivity", self.connectivity)
        params.addRow("Iterations", self.iterations)
        grow_box = QGroupBox("Region growing")
        grow_box.setLayout(params)
        out = QGroupBox("Write into")
        out_layout = QVBoxLayout(out)
        out_layout.addWidget(self.target)
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.grow_button)
        out_layout.addLayout(buttons)
        out_layout.addWidget(self.undo)
        layout = QVBoxLayout(self)
        layout.addWidget(grow_box)
        layout.addWidget(out)
        layout.addWidget(self.jobs)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.add_seeds_button.clicked.connect(self.new_seeds_layer)
        self.clear_seeds_button.clicked.connect(self.clear_seeds)
        self.preview_button.clicked.connect(lambda: self.start(write=False))
        self.grow_button.clicked.connect(lambda: self.start(write=True))
        self.jobs.finished.connect(self._on_grown)
        self.jobs.failed.connect(self.status.setText)
        self.jobs.cancelled.connect(lambda: self.status.setText("cancelled; nothing written"))

    # ------------------------------------------------------------------ seeds
    def new_seeds_layer(self) -> Points:
        """Add an empty 3D Points layer for seeds, selected and in 'add' mode."""
        layer = self.viewer.add_points(
            np.empty((0, 3)), ndim=3, name=self.SEEDS_NAME, size=4, face_color="yellow", border_color="black"
        )
        layer.mode = "add"
        self.seeds.set_layer(layer)
        return layer

    def clear_seeds(self) -> None:
        """Remove every seed of the chosen Points layer."""
        layer = self.seeds.layer()
        if layer is not None:
            layer.data = np.empty((0, 3))

    # ------------------------------------------------------------------ growing
    def _fail(self, error: BaseException) -> None:
        self.status.setText(report_error(error))

    def parameters(self) -> dict[str, Any]:
        """The core's keyword arguments from the controls."""
        return {
            "tolerance": self.tolerance.value(),
            "radius_mm": self.radius.value(),
            "connectivity": 6 if self.connectivity.currentIndex() == 0 else 26,
            "iterations": self.iterations.value(),
        }

    def start(self, *, write: bool = True) -> Any:
        """Check the inputs and grow in a worker; write into the label when done if ``write``."""
        try:
            image = self.image.layer()
            if image is None:
                raise MedsegError("add or choose a 3D image layer first")
            points = self.seeds.layer()
            if points is None:
                raise MedsegError("no seeds: press 'New seeds layer' and click inside the structure")
            index = check_seeds(seeds_in_image(points, image), image.data.shape)
            if write:
                self.target.checked(image)  # a mismatched grid fails now, before any work
            spacing = geometry_of_layer(image).spacing
            self._write_after = write
            self._job_image = image
            self.status.setText(f"growing from {len(index)} seed(s)...")
            return self.jobs.start(seeded_region, np.asarray(image.data), index, spacing=spacing, **self.parameters())
        except MedsegError as error:
            self._fail(error)
            return None

    def _on_grown(self, region: GrownRegion) -> None:
        self.last = region
        image = self._job_image
        mm3 = float(np.prod(geometry_of_layer(image).spacing))
        summary = f"{region.n_voxels} voxels ({region.n_voxels * mm3 / 1000:.2f} mL), range [{region.low:.6g}, {region.high:.6g}]"
        if not self._write_after:
            self._show_preview(image, region)
            self.status.setText(f"preview: {summary}")
            return
        try:
            layer = self.target.checked(image)
            if layer is None:
                layer = self.target.create(image)
            label = self.target.value.value()
            edit = write_mask(
                np.asarray(layer.data),
                region.crop,
                label=label,
                region=region.slices,
                in_place=False,
                description="region growing",
            )
        except MedsegError as error:
            self._fail(error)
            return
        changed = apply_edit(layer, edit)
        if self.preview is not None and self.preview in self.viewer.layers:
            self.preview.visible = False
        self.status.setText(f"grown {summary}; label {label} of '{layer.name}': {changed} voxels added")

    def _show_preview(self, image: Image, region: GrownRegion) -> None:
        mask = region.full().view(np.uint8)
        preview = self.preview
        if preview is None or preview not in self.viewer.layers or preview.data.shape != mask.shape:
            if preview is not None and preview in self.viewer.layers:
                self.viewer.layers.remove(preview)
            data, kwargs, _ = labels_layer_data(volume_from_layer(image).with_array(mask), name=self.PREVIEW_NAME)
            kwargs["metadata"][PREVIEW_KEY] = True
            self.preview = self.viewer.add_labels(data, opacity=0.5, **kwargs)
        else:
            preview.data = mask
            preview.visible = True
