"""Edit tools widget: run one editing tool on the selected label of a labels layer.

Tools and their parameters come from :data:`medseg_napari.core.classical.editing.TOOLS`
(sizes in mm, using the layer's voxel spacing). The tool runs in a worker; its
:class:`LabelEdit` is written through napari's undo history, so each edit is one
Ctrl+Z (or the Undo button) away, with memory bounded by the changed voxels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medseg_napari._napari.layers import geometry_of_layer
from medseg_napari._widgets._common import JobPanel, LayerPicker, report_error
from medseg_napari._widgets._undo import UndoButtons, apply_edit
from medseg_napari.core.classical.editing import TOOLS, LabelEdit, apply_tool
from medseg_napari.core.errors import GeometryMismatchError, MedsegError

__all__ = ["EditToolsWidget"]

_AXES = ["z (axial slices)", "y (coronal)", "x (sagittal)"]
_UNITS = {"radius_mm": " mm", "size_mm": " mm", "min_volume_mm3": " mm³"}
_TITLES = {
    "radius_mm": "Radius",
    "size_mm": "Size",
    "min_volume_mm3": "Smaller than",
    "connectivity": "Connectivity",
    "axis": "Across",
    "method": "Method",
}


def _run_tool(labels: np.ndarray, tool: str, *, progress: Any = None, cancel: Any = None, **kwargs: Any) -> LabelEdit:
    """Worker body: compute the edit without touching the layer (written on the GUI thread)."""
    if cancel is not None:
        cancel.raise_if_cancelled()
    return apply_tool(labels, tool, in_place=False, **kwargs)


class EditToolsWidget(QWidget):
    """Keep largest, remove islands, fill holes, dilate/erode/open/close, smooth, interpolate, logical ops."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.labels = LayerPicker(napari_viewer, Labels)
        self.label = QSpinBox()
        self.label.setRange(1, 65535)
        self.label.setToolTip("Label edited (follows the layer's selected label)")
        self.tool = QComboBox()
        for name, spec in TOOLS.items():
            self.tool.addItem(spec.title, name)
        self.params_box = QGroupBox("Parameters")
        self.params_form = QFormLayout(self.params_box)
        self.param_widgets: dict[str, QWidget] = {}
        self.other_label = QSpinBox()
        self.other_label.setRange(1, 65535)
        self.other_label.setValue(2)
        self.other_layer = LayerPicker(napari_viewer, Labels, allow_none=True)
        self.other_layer.setToolTip("Take the second label from another labels layer on the same grid")
        self.other_layer.currentIndexChanged.connect(self._name_same_layer)
        self.other_box = QGroupBox("Second label")
        other_form = QFormLayout(self.other_box)
        other_form.addRow("Label", self.other_label)
        other_form.addRow("From layer", self.other_layer)
        self.overwrite = QCheckBox("May overwrite other labels")
        self.overwrite.setToolTip("Off: only background voxels are claimed; other labels are never touched")
        self.apply_button = QPushButton("Apply")
        self.undo = UndoButtons(self.labels.layer)
        self.jobs = JobPanel()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        target = QFormLayout()
        target.addRow("Labels", self.labels)
        target.addRow("Label", self.label)
        target.addRow("Tool", self.tool)
        layout = QVBoxLayout(self)
        layout.addLayout(target)
        layout.addWidget(self.params_box)
        layout.addWidget(self.other_box)
        layout.addWidget(self.overwrite)
        layout.addWidget(self.apply_button)
        layout.addWidget(self.undo)
        layout.addWidget(self.jobs)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.labels.currentIndexChanged.connect(self._on_layer)
        self.tool.currentIndexChanged.connect(self._build_params)
        self.apply_button.clicked.connect(self.start)
        self.jobs.finished.connect(self._on_done)
        self.jobs.failed.connect(self.status.setText)
        self._on_layer()
        self._build_params()

    # ------------------------------------------------------------------ controls
    def _on_layer(self, *_: Any) -> None:
        layer = self.labels.layer()
        if layer is not None:
            self.label.setValue(max(1, int(layer.selected_label)))

    def _name_same_layer(self, *_: Any) -> None:
        if self.other_layer.count() and self.other_layer.itemText(0) != "(same layer)":
            self.other_layer.setItemText(0, "(same layer)")

    def set_tool(self, name: str) -> None:
        """Choose a tool by its name in :data:`TOOLS`."""
        self.tool.setCurrentIndex(self.tool.findData(name))

    def _build_params(self, *_: Any) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_widgets = {}
        spec = TOOLS[self.tool.currentData()]
        for name, default in spec.params.items():
            widget: QWidget
            if name == "axis":
                widget = QComboBox()
                widget.addItems(_AXES)
                widget.setCurrentIndex(int(default))
            elif name == "connectivity":
                widget = QComboBox()
                widget.addItems(["6", "18", "26"])
                widget.setCurrentText(str(default))
            elif name == "method":
                widget = QComboBox()
                widget.addItems(["median", "gaussian"])
                widget.setCurrentText(str(default))
            else:
                widget = QDoubleSpinBox()
                widget.setDecimals(1)
                widget.setRange(0.0, 1e7 if name == "min_volume_mm3" else 100.0)
                widget.setValue(float(default))
                widget.setSuffix(_UNITS.get(name, ""))
            self.param_widgets[name] = widget
            self.params_form.addRow(_TITLES.get(name, name), widget)
        self.other_box.setVisible(spec.needs_other)
        if not spec.params and not spec.needs_other:
            self.params_form.addRow(QLabel("(no parameters)"))
        self.params_box.setVisible(bool(spec.params) or not spec.needs_other)

    def parameters(self) -> dict[str, Any]:
        """The chosen tool's parameters from the controls."""
        values: dict[str, Any] = {}
        for name, widget in self.param_widgets.items():
            if name == "axis":
                values[name] = widget.currentIndex()  # type: ignore[attr-defined]
            elif name == "connectivity":
                values[name] = int(widget.currentText())  # type: ignore[attr-defined]
            elif name == "method":
                values[name] = widget.currentText()  # type: ignore[attr-defined]
            else:
                values[name] = widget.value()  # type: ignore[attr-defined]
        return values

    # ------------------------------------------------------------------ running
    def _fail(self, error: BaseException) -> None:
        self.status.setText(report_error(error))

    def start(self) -> Any:
        """Run the chosen tool on the chosen label in a worker."""
        try:
            layer = self.labels.layer()
            if layer is None:
                raise MedsegError("add or choose a 3D labels layer first")
            name = self.tool.currentData()
            spec = TOOLS[name]
            kwargs: dict[str, Any] = {
                "label": self.label.value(),
                "spacing": geometry_of_layer(layer).spacing,
                "overwrite": self.overwrite.isChecked(),
                **self.parameters(),
            }
            if spec.needs_other:
                other_layer = self.other_layer.layer()
                if other_layer is None or other_layer is layer:
                    kwargs["other"] = self.other_label.value()
                else:
                    if other_layer.data.shape != layer.data.shape or not geometry_of_layer(other_layer).is_close(
                        geometry_of_layer(layer)
                    ):
                        raise GeometryMismatchError(
                            f"'{other_layer.name}' is not on the grid of '{layer.name}'; "
                            "logical operations need two layers on the same grid"
                        )
                    kwargs["other"] = np.asarray(other_layer.data) == self.other_label.value()
            self._job_layer = layer
            self.status.setText(f"{spec.title.lower()}...")
            return self.jobs.start(_run_tool, np.asarray(layer.data), name, **kwargs)
        except MedsegError as error:
            self._fail(error)
            return None

    def _on_done(self, edit: LabelEdit) -> None:
        layer = self._job_layer
        changed = apply_edit(layer, edit)
        self.status.setText(f"{edit.description}: {changed} voxels changed" if changed else "nothing changed")
