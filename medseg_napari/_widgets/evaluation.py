"""Evaluation widget: per-label metrics of a prediction against a reference, error overlay.

Thin: collects the two layers and options, runs
:func:`medseg_napari.core.metrics.evaluate_volumes` in a worker (through
:class:`~medseg_napari._widgets._common.JobPanel`), fills a table, adds the
error layer. Painting into either layer re-runs the evaluation after a short
pause (debounced), so the table follows the user's edits without freezing the UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg_napari._napari.layers import labels_layer_data, volume_from_layer
from medseg_napari._widgets._common import JobPanel, LayerPicker, report_error, show_info
from medseg_napari.core.errors import GeometryMismatchError, MedsegError
from medseg_napari.core.geometry import grids_overlap
from medseg_napari.core.metrics import (
    LabelMetrics,
    error_map,
    evaluate_volumes,
    most_errors_slice,
    write_metrics_csv,
)
from medseg_napari.core.progress import CancelToken, ProgressCallback
from medseg_napari.core.volume import Volume

__all__ = ["EvaluationWidget"]

#: Table columns: (header, LabelMetrics attribute, digits).
COLUMNS = (
    ("Label", "label", None),
    ("Name", "name", None),
    ("Dice", "dice", 4),
    ("IoU", "iou", 4),
    ("HD mm", "hd", 2),
    ("HD95 mm", "hd95", 2),
    ("ASSD mm", "assd", 3),
    ("MASD mm", "masd", 3),
    ("NSD", "nsd", 4),
    ("Pred mL", "volume_pred_ml", 3),
    ("Ref mL", "volume_ref_ml", 3),
    ("Vol. sim.", "volume_similarity", 4),
    ("Precision", "precision", 4),
    ("Recall", "recall", 4),
    ("Empty", "empty", None),
)
ERROR_COLORS = {0: "transparent", 1: "#ff3030", 2: "#30a0ff", None: "transparent"}  # FP red, FN blue
ERROR_NAMES = {1: "false positive", 2: "false negative"}
DEBOUNCE_MS = 400


def _evaluate_job(
    prediction: Volume,
    reference: Volume,
    *,
    tolerance_mm: float,
    surface: str,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> tuple[list[LabelMetrics], np.ndarray]:
    """Metrics and the FP/FN map, with the reference on the prediction's grid (runs in a worker)."""
    if not prediction.same_grid_as(reference):
        if not grids_overlap(prediction.shape, prediction.geometry, reference.shape, reference.geometry):
            raise GeometryMismatchError("the prediction and the reference do not overlap in physical space")
        reference = reference.resampled_onto(prediction, interpolation="nearest")
    records = evaluate_volumes(
        prediction,
        reference,
        tolerance_mm=tolerance_mm,
        surface=surface,
        progress=progress,
        cancel=cancel,  # type: ignore[arg-type]
    )
    return records, error_map(prediction.array, reference.array)


class EvaluationWidget(QWidget):
    """Compare a prediction Labels layer with a reference: metrics table, errors layer, CSV export."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.records: list[LabelMetrics] = []
        self.errors: np.ndarray | None = None
        self._errors_geometry_layer: Labels | None = None
        self._pending = False
        self._watched: list[Labels] = []

        self.prediction_picker = LayerPicker(napari_viewer, Labels)
        self.reference_picker = LayerPicker(napari_viewer, Labels)
        self.tolerance = QDoubleSpinBox()
        self.tolerance.setRange(0.0, 100.0)
        self.tolerance.setDecimals(2)
        self.tolerance.setSingleStep(0.5)
        self.tolerance.setValue(1.0)
        self.tolerance.setSuffix(" mm")
        self.tolerance.setToolTip("NSD tolerance: surface within this distance counts as correct")
        self.surface_mode = QComboBox()
        self.surface_mode.addItems(["voxel", "area"])
        self.surface_mode.setToolTip("surface voxels (as MONAI) or area-weighted elements (as DeepMind)")
        self.auto_refresh = QCheckBox("Refresh after painting")
        self.auto_refresh.setChecked(True)

        form = QFormLayout()
        form.addRow("Prediction", self.prediction_picker)
        form.addRow("Reference", self.reference_picker)
        form.addRow("NSD tolerance", self.tolerance)
        form.addRow("Surface", self.surface_mode)
        form.addRow(self.auto_refresh)

        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.errors_button = QPushButton("Show errors")
        self.errors_button.setToolTip("add a layer with false positives (red) and false negatives (blue)")
        self.errors_button.clicked.connect(self.show_errors)
        self.jump_button = QPushButton("Go to most errors")
        self.jump_button.setToolTip("show the slice with the most false positives and false negatives")
        self.jump_button.clicked.connect(self.go_to_most_errors)
        self.export_button = QPushButton("Export CSV")
        self.export_button.clicked.connect(self._export_clicked)
        buttons = QHBoxLayout()
        for button in (self.evaluate_button, self.errors_button, self.jump_button, self.export_button):
            buttons.addWidget(button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(140)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.jobs = JobPanel()
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_job_ended)
        self.jobs.cancelled.connect(self._on_job_ended)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.jobs)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._auto_evaluate)
        self.prediction_picker.currentIndexChanged.connect(self._watch_layers)
        self.reference_picker.currentIndexChanged.connect(self._watch_layers)
        self._watch_layers()

    # --- layers and events ---------------------------------------------------
    def _watch_layers(self, *_: Any) -> None:
        """Listen to paint and data events of the two chosen layers (and only those)."""
        for layer in self._watched:
            layer.events.paint.disconnect(self._schedule)
            layer.events.data.disconnect(self._schedule)
        self._watched = []
        for layer in {
            id(lay): lay for lay in (self.prediction_picker.layer(), self.reference_picker.layer()) if lay
        }.values():
            layer.events.paint.connect(self._schedule)
            layer.events.data.connect(self._schedule)
            self._watched.append(layer)

    def _schedule(self, *_: Any) -> None:
        """Restart the debounce timer: evaluate once painting pauses."""
        if self.auto_refresh.isChecked():
            self._timer.start()

    def _auto_evaluate(self) -> None:
        if self.prediction_picker.layer() is not None and self.reference_picker.layer() is not None:
            self.evaluate()

    # --- evaluation ----------------------------------------------------------
    def evaluate(self) -> None:
        """Evaluate the chosen prediction against the reference in a worker."""
        if self.jobs.running:
            self._pending = True  # re-run when the current job ends, on the newest data
            return
        pred_layer, ref_layer = self.prediction_picker.layer(), self.reference_picker.layer()
        if pred_layer is None or ref_layer is None:
            report_error("choose a prediction and a reference Labels layer")
            return
        try:
            # Copies: the user may keep painting while the worker reads them.
            prediction = volume_from_layer(pred_layer)
            reference = volume_from_layer(ref_layer)
            prediction = prediction.with_array(np.array(prediction.array, copy=True))
            reference = reference.with_array(np.array(reference.array, copy=True))
        except MedsegError as error:
            report_error(error)
            return
        self._errors_geometry_layer = pred_layer
        self.jobs.start(
            _evaluate_job,
            prediction,
            reference,
            tolerance_mm=self.tolerance.value(),
            surface=self.surface_mode.currentText(),
        )

    def _on_finished(self, result: tuple[list[LabelMetrics], np.ndarray]) -> None:
        self.records, self.errors = result
        self._fill_table()
        n_fp = int(np.count_nonzero(self.errors == 1))
        n_fn = int(np.count_nonzero(self.errors == 2))
        self.summary.setText(
            f"{len(self.records)} labels; {n_fp} false-positive and {n_fn} false-negative voxels"
        )
        self.jobs.status.setText("")
        if self._errors_layer() is not None:
            self.show_errors()
        self._on_job_ended()

    def _on_job_ended(self, *_: Any) -> None:
        if self._pending:
            self._pending = False
            QTimer.singleShot(0, self.evaluate)

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.records))
        for row, record in enumerate(self.records):
            for col, (_, attr, digits) in enumerate(COLUMNS):
                value = getattr(record, attr)
                if value is None:
                    text = ""
                elif digits is None:
                    text = str(value)
                elif not np.isfinite(value):
                    text = "inf"
                else:
                    text = f"{value:.{digits}f}"
                self.table.setItem(row, col, QTableWidgetItem(text))

    def table_values(self) -> dict[int, dict[str, str]]:
        """The table's text as ``{label: {header: text}}`` (for tests and scripting)."""
        out = {}
        for row in range(self.table.rowCount()):
            cells = {COLUMNS[c][0]: self.table.item(row, c).text() for c in range(self.table.columnCount())}
            out[int(cells["Label"])] = cells
        return out

    # --- errors --------------------------------------------------------------
    def _errors_name(self) -> str:
        layer = self._errors_geometry_layer or self.prediction_picker.layer()
        return f"errors: {layer.name if layer is not None else 'prediction'}"

    def _errors_layer(self) -> Labels | None:
        name = self._errors_name()
        return next((lay for lay in self.viewer.layers if isinstance(lay, Labels) and lay.name == name), None)

    def show_errors(self) -> Labels | None:
        """Add (or update) a Labels layer with false positives (1, red) and false negatives (2, blue)."""
        if self.errors is None or self._errors_geometry_layer is None:
            report_error("evaluate first: no errors computed yet")
            return None
        existing = self._errors_layer()
        if existing is not None:
            existing.data = self.errors
            return existing
        grid = volume_from_layer(self._errors_geometry_layer)
        data, kwargs, _ = labels_layer_data(
            grid.with_array(self.errors), name=self._errors_name(), label_names=ERROR_NAMES
        )
        layer = self.viewer.add_labels(
            data, colormap=DirectLabelColormap(color_dict=ERROR_COLORS), opacity=0.8, **kwargs
        )
        layer.editable = False
        return layer

    def go_to_most_errors(self) -> int | None:
        """Move the viewer to the axial slice with the most errors; return its index."""
        if self.errors is None or self._errors_geometry_layer is None:
            report_error("evaluate first: no errors computed yet")
            return None
        z = most_errors_slice(self.errors, axis=0)
        if z is None:
            show_info("no errors: the prediction equals the reference")
            return None
        ys, xs = np.nonzero(self.errors[z])
        index = np.array([z, ys.mean(), xs.mean()])
        # Layers carry an affine: go through the layer's data -> world transform.
        world = np.asarray(self._errors_geometry_layer.data_to_world(index), dtype=float)
        self.viewer.dims.set_point([0, 1, 2], tuple(world))
        if self.viewer.dims.ndisplay == 2:
            self.viewer.camera.center = tuple(world)
        return z

    # --- export --------------------------------------------------------------
    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> None:
        """Write the current table to a CSV file (atomically)."""
        if not self.records:
            report_error("nothing to export: evaluate first")
            return
        layer = self._errors_geometry_layer
        try:
            write_metrics_csv(path, {layer.name if layer is not None else "prediction": self.records})
        except OSError as error:
            report_error(f"could not write {path}: {error}")
            return
        show_info(f"wrote {path}")
