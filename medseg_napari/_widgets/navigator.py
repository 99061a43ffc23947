"""Case navigator and failure browser: go through a data set case by case, autosave, jump to the errors.

Thin: the cases come from :func:`medseg_napari.core.cases.open_dataset`, the
metrics from :func:`medseg_napari.core.metrics.batch.evaluate_pairs` (run
through :class:`~medseg_napari._widgets._common.JobPanel`, so the UI never
freezes) or from a metrics CSV of ``medseg evaluate``; the error layer from
:func:`~medseg_napari.core.metrics.error_map` and its clusters from
:func:`~medseg_napari.core.cases.error_clusters`. Saving goes through
:meth:`~medseg_napari.core.cases.CaseDataset.save_labels` (atomic, with a backup).

Keyboard (on the viewer): Shift-N next case, Shift-P previous case, Shift-E next error cluster.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Layer
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from medseg_napari._napari.layers import image_layer_data, labels_layer_data, volume_from_layer
from medseg_napari._widgets._common import JobPanel, report_error, show_info
from medseg_napari._widgets.evaluation import ERROR_COLORS, ERROR_NAMES
from medseg_napari.core.cases import (
    CaseDataset,
    ErrorCluster,
    case_table,
    error_clusters,
    open_dataset,
    read_metrics_csv,
)
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.io import read_volume
from medseg_napari.core.metrics import LabelMetrics, error_map, most_errors_slice
from medseg_napari.core.metrics.batch import evaluate_pairs

__all__ = ["CaseNavigatorWidget"]

AUTOSAVE_S = 30
#: Fewer cases than this are evaluated one by one in the worker thread; more go to a thread pool
#: (not processes: a started process re-imports the __main__ script, see core.metrics.batch).
POOL_MIN_CASES = 8
KEYS = {"Shift-N": "next_case", "Shift-P": "previous_case", "Shift-E": "next_error_cluster"}


class _MetricItem(QTableWidgetItem):
    """A table cell that sorts by its number; cells without a value sort last in either order."""

    def __init__(self, value: float | None, digits: int) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text, self.key = "", None
        else:
            text = "inf" if math.isinf(value) else f"{value:.{digits}f}"
            self.key = float(value)
        super().__init__(text)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        other_key = getattr(other, "key", None)
        table = self.tableWidget()
        ascending = table is None or table.horizontalHeader().sortIndicatorOrder() == Qt.AscendingOrder
        if self.key is None:
            return other_key is not None and not ascending
        if other_key is None:
            return ascending
        return self.key < other_key


class CaseNavigatorWidget(QWidget):
    """Go through the cases of a data set: table with metrics, autosave, failure browser, box plots."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.dataset: CaseDataset | None = None
        self.metrics: dict[str, list[LabelMetrics]] = {}
        self.current: str | None = None
        self.layers: dict[str, Layer] = {}
        self.errors: np.ndarray | None = None
        self.clusters: list[ErrorCluster] = []
        self.cluster_index = -1
        self.dirty = False
        self._labels_columns: list[tuple[str, str, int]] = []  # (header, key in case_table row, digits)
        self._pick_cases: dict[Any, list[str]] = {}
        self._pending: set[str] = set()

        # --- open ---
        self.open_button = QPushButton("Open folder...")
        self.open_button.setToolTip(
            "a workspace / Decathlon folder, or one with images/, predictions/, references/"
        )
        self.open_button.clicked.connect(self._open_folder_clicked)
        self.folders_button = QPushButton("Open folders...")
        self.folders_button.setToolTip(
            "choose images, predictions and references folders one by one (cancel to skip)"
        )
        self.folders_button.clicked.connect(self._open_folders_clicked)
        self.csv_button = QPushButton("Metrics CSV...")
        self.csv_button.setToolTip(
            "show the metrics of a 'medseg evaluate -o metrics.csv' run for these folders"
        )
        self.csv_button.clicked.connect(self._open_csv_clicked)
        top = QHBoxLayout()
        for button in (self.open_button, self.folders_button, self.csv_button):
            top.addWidget(button)
        self.source = QLabel("no data set open")
        self.source.setWordWrap(True)

        # --- table and plots ---
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setSortingEnabled(True)
        self.table.setMinimumHeight(160)
        self.table.itemSelectionChanged.connect(self._on_selection)

        self.figure = Figure(figsize=(4, 3.2), facecolor="#262930", layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        self.canvas.mpl_connect("pick_event", self._on_pick)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Cases")
        self.tabs.addTab(self.canvas, "Plots")

        # --- navigation ---
        self.previous_button = QPushButton("Previous")
        self.previous_button.setToolTip("previous case in the table's order (Shift-P)")
        self.previous_button.clicked.connect(self.previous_case)
        self.next_button = QPushButton("Next")
        self.next_button.setToolTip("next case in the table's order (Shift-N)")
        self.next_button.clicked.connect(self.next_case)
        self.cluster_button = QPushButton("Next error")
        self.cluster_button.setToolTip("centre the view on the next error cluster, largest first (Shift-E)")
        self.cluster_button.clicked.connect(self.next_error_cluster)
        self.save_button = QPushButton("Save")
        self.save_button.setToolTip("save the labels now (they are also saved when leaving a case)")
        self.save_button.clicked.connect(self.save_current)
        nav = QHBoxLayout()
        for button in (self.previous_button, self.next_button, self.cluster_button, self.save_button):
            nav.addWidget(button)

        self.autosave = QSpinBox()
        self.autosave.setRange(0, 3600)
        self.autosave.setValue(AUTOSAVE_S)
        self.autosave.setSuffix(" s")
        self.autosave.setSpecialValueText("off")
        self.autosave.setToolTip("save edited labels every N seconds (0: only when leaving a case)")
        self.autosave.valueChanged.connect(self._restart_timer)
        self.evaluate_button = QPushButton("Compute metrics")
        self.evaluate_button.setToolTip("evaluate every case with a prediction and a reference")
        self.evaluate_button.clicked.connect(self.compute_metrics)
        options = QHBoxLayout()
        options.addWidget(QLabel("Autosave every"))
        options.addWidget(self.autosave)
        options.addStretch(1)
        options.addWidget(self.evaluate_button)

        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ff8080")
        self.jobs = JobPanel()
        self.jobs.finished.connect(self._on_metrics)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.source)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(nav)
        layout.addLayout(options)
        layout.addWidget(self.info)
        layout.addWidget(self.message)
        layout.addWidget(self.jobs)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self._autosave)
        self._restart_timer()
        self._bind_keys()

    # --- keys and timer ----------------------------------------------------------
    def _bind_keys(self) -> None:
        for key, method in KEYS.items():
            self.viewer.bind_key(key, self._key_handler(method), overwrite=True)

    def _key_handler(self, method: str) -> Any:
        def handler(_viewer: Any) -> None:
            getattr(self, method)()

        handler.__name__ = method
        return handler

    def _restart_timer(self, *_: Any) -> None:
        seconds = self.autosave.value()
        if seconds > 0:
            self._timer.start(seconds * 1000)
        else:
            self._timer.stop()

    def _autosave(self) -> None:
        if self.dirty:
            self.save_current()

    # --- opening ---------------------------------------------------------------------
    def _open_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a data set folder")
        if folder:
            self.open_folder(folder)

    def _open_folders_clicked(self) -> None:
        chosen = {}
        for what in ("images", "predictions", "references"):
            folder = QFileDialog.getExistingDirectory(self, f"Folder of {what} (cancel: none)")
            if folder:
                chosen[what] = folder
        if chosen:
            self.open_folders(**chosen)

    def _open_csv_clicked(self) -> None:
        if self.dataset is None:
            report_error("open the data set's folders first, then its metrics CSV")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Metrics CSV of medseg evaluate", "", "CSV (*.csv)")
        if path:
            self.open_metrics_csv(path)

    def open_folder(
        self, folder: str | Path, *, predictions: str | Path | None = None, compute: bool = True
    ) -> bool:
        """Open a workspace / Decathlon folder or a folder of images/, predictions/, references/.

        With ``compute``, the metrics of the cases with a prediction and a
        reference are computed in a worker. Returns whether it opened.
        """
        return self._open(lambda: open_dataset(folder, predictions=predictions), compute=compute)

    def open_folders(
        self,
        *,
        images: str | Path | None = None,
        predictions: str | Path | None = None,
        references: str | Path | None = None,
        metrics_csv: str | Path | None = None,
        compute: bool = True,
    ) -> bool:
        """Open separate images, predictions and references folders (and optionally their metrics CSV)."""
        opened = self._open(
            lambda: open_dataset(images=images, predictions=predictions, references=references),
            compute=compute and metrics_csv is None,
        )
        if opened and metrics_csv is not None:
            self.open_metrics_csv(metrics_csv)
        return opened

    def _open(self, make: Any, *, compute: bool) -> bool:
        if not self.close_case():
            return False
        try:
            dataset = make()
        except MedsegError as error:
            self._error(error)
            return False
        if self.jobs.running:
            self.jobs.cancel()
            self.jobs.wait()
        self.dataset = dataset
        self.metrics = {}
        missing = dataset.missing()
        n_pairs = len(dataset.pairs())
        where = (
            dataset.root
            if dataset.workspace is not None
            else ", ".join(
                f"{k} {v}"
                for k, v in (
                    ("images", dataset.images),
                    ("predictions", dataset.predictions),
                    ("references", dataset.references),
                )
                if v is not None
            )
        )
        self.source.setText(
            f"{dataset.kind}: {where}\n{len(dataset.cases)} cases, {n_pairs} with a prediction and a reference"
            + (f", {len(missing)} missing a file" if missing else "")
        )
        self.message.setText("")
        self._fill_table()
        self._draw_plots()
        if compute and n_pairs:
            self.compute_metrics()
        return True

    def open_metrics_csv(self, path: str | Path) -> bool:
        """Show the metrics of a ``medseg evaluate -o`` CSV for the open data set's cases."""
        if self.dataset is None:
            self._error("open the data set's folders first, then its metrics CSV")
            return False
        try:
            metrics = read_metrics_csv(path)
        except MedsegError as error:
            self._error(error)
            return False
        known = set(self.dataset.names())
        unknown = sorted(set(metrics) - known)
        self.metrics = {k: v for k, v in metrics.items() if k in known}
        if unknown:
            show_info(f"{len(unknown)} cases of the CSV are not in this data set (e.g. {unknown[0]})")
        self._fill_table()
        self._draw_plots()
        return True

    # --- metrics -----------------------------------------------------------------------
    def compute_metrics(self, names: list[str] | None = None) -> None:
        """Evaluate the cases with a prediction and a reference (all, or ``names``) in a worker."""
        if self.dataset is None:
            return
        pairs = [p for p in self.dataset.pairs() if names is None or p.name in names]
        if not pairs:
            return
        if self.jobs.running:
            self._pending |= set(names or self.dataset.names())
            return
        self.jobs.start(
            evaluate_pairs,
            pairs,
            label_names=self.dataset.label_names or None,
            workers=1 if len(pairs) < POOL_MIN_CASES else None,
            processes=False,
        )

    def _on_metrics(self, result: dict[str, list[LabelMetrics]]) -> None:
        self.metrics.update(result)
        self.jobs.status.setText(f"metrics of {len(result)} cases")
        self._fill_table()
        self._draw_plots()
        pending = self._pending
        if pending:
            self._pending = set()
            QTimer.singleShot(0, lambda: self.compute_metrics(sorted(pending)))

    def _label_ids(self) -> dict[int, str]:
        names = dict(self.dataset.label_names) if self.dataset is not None else {}
        for records in self.metrics.values():
            for r in records:
                names.setdefault(r.label, r.name)
        return dict(sorted(names.items()))

    def _fill_table(self) -> None:
        """Rebuild the table: case, status, missing files, mean Dice, Dice and HD95 per label."""
        cases = self.dataset.cases if self.dataset is not None else []
        labels = self._label_ids()
        self._labels_columns = [("Mean Dice", "mean_dice", 4)]
        for label, name in labels.items():
            self._labels_columns.append((f"Dice {name}", f"dice_{label}", 4))
        for label, name in labels.items():
            self._labels_columns.append((f"HD95 {name} mm", f"hd95_{label}", 2))
        headers = ["Case", "Status", "Missing"] + [c[0] for c in self._labels_columns]
        rows = case_table(self.metrics)
        table = self.table
        table.blockSignals(True)
        table.setSortingEnabled(False)
        table.clear()
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setRowCount(len(cases))
        for row, case in enumerate(cases):
            first = QTableWidgetItem(case.name)
            first.setData(Qt.UserRole, case.name)
            table.setItem(row, 0, first)
            table.setItem(row, 1, QTableWidgetItem(case.status or ""))
            missing = QTableWidgetItem(", ".join(case.missing))
            if case.missing:
                missing.setToolTip("no " + " and no ".join(case.missing) + " for this case")
            table.setItem(row, 2, missing)
            values = rows.get(case.name, {})
            for col, (_, key, digits) in enumerate(self._labels_columns, 3):
                table.setItem(row, col, _MetricItem(values.get(key), digits))
        table.setSortingEnabled(True)
        self._select_row_of(self.current)
        table.blockSignals(False)

    def table_values(self) -> dict[str, dict[str, str]]:
        """The table's text as ``{case: {header: text}}`` (for tests and scripting)."""
        headers = [self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]
        out = {}
        for row in range(self.table.rowCount()):
            cells = {h: self.table.item(row, c).text() for c, h in enumerate(headers)}
            out[cells["Case"]] = cells
        return out

    def column_of(self, header: str) -> int:
        """Index of the column called ``header``."""
        for col in range(self.table.columnCount()):
            if self.table.horizontalHeaderItem(col).text() == header:
                return col
        raise KeyError(header)

    def sort_by(self, header: str, *, ascending: bool = True) -> None:
        """Sort the table by a column (as clicking its header)."""
        self.table.sortByColumn(
            self.column_of(header), Qt.AscendingOrder if ascending else Qt.DescendingOrder
        )

    def case_order(self) -> list[str]:
        """Case names in the table's current (sorted) order."""
        return [self.table.item(r, 0).data(Qt.UserRole) for r in range(self.table.rowCount())]

    def _select_row_of(self, name: str | None) -> None:
        blocked = self.table.blockSignals(True)
        self.table.clearSelection()
        if name is not None:
            for row, case in enumerate(self.case_order()):
                if case == name:
                    self.table.selectRow(row)
                    self.table.scrollToItem(self.table.item(row, 0))
                    break
        self.table.blockSignals(blocked)

    def _on_selection(self) -> None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if len(rows) != 1:
            return
        name = self.table.item(rows.pop(), 0).data(Qt.UserRole)
        if name != self.current:
            self.open_case(name)

    # --- navigation ------------------------------------------------------------------------
    def next_case(self) -> None:
        """Open the next case in the table's order."""
        self._step(+1)

    def previous_case(self) -> None:
        """Open the previous case in the table's order."""
        self._step(-1)

    def _step(self, delta: int) -> None:
        order = self.case_order()
        if not order:
            return
        if self.current in order:
            index = order.index(self.current) + delta
            if not 0 <= index < len(order):
                show_info("last case" if delta > 0 else "first case")
                return
        else:
            index = 0 if delta > 0 else len(order) - 1
        self.open_case(order[index])

    def open_case(self, name: str) -> bool:
        """Save the current case if edited, then load ``name``'s layers (replacing the previous ones).

        Adds the image, the prediction (read-only), the labels (the reference,
        editable; a copy of the prediction when there is no reference) and, when
        both a prediction and a reference exist, the error layer; then moves the
        view to the slice with the most errors. Returns whether it loaded.
        """
        if self.dataset is None:
            return False
        try:
            case = self.dataset.case(name)
        except MedsegError as error:
            self._error(error)
            return False
        if not self.close_case():
            self._select_row_of(self.current)
            return False
        try:
            image = read_volume(case.image) if case.image is not None else None
            prediction = read_volume(case.prediction) if case.prediction is not None else None
            reference = read_volume(case.reference) if case.reference is not None else None
        except MedsegError as error:
            self._error(error)
            self._select_row_of(None)
            return False
        names = self.dataset.label_names or None
        if image is not None:
            data, kwargs, _ = image_layer_data(image, name=f"{name} image")
            self.layers["image"] = self.viewer.add_image(data, **kwargs)
        if prediction is not None:
            data, kwargs, _ = labels_layer_data(prediction, name=f"{name} prediction", label_names=names)
            layer = self.viewer.add_labels(data, opacity=0.5, **kwargs)
            layer.editable = False
            self.layers["prediction"] = layer
        start = reference or prediction
        if start is None and image is not None:
            start = image.with_array(np.zeros(image.shape, np.uint8))
        if start is not None:
            array = np.array(start.array, copy=True)
            if not np.issubdtype(array.dtype, np.integer):
                array = np.rint(array).astype(np.int32)
            data, kwargs, _ = labels_layer_data(
                start.with_array(array), name=f"{name} labels", label_names=names
            )
            layer = self.viewer.add_labels(data, opacity=0.6, **kwargs)
            layer.events.paint.connect(self._mark_dirty)
            layer.events.data.connect(self._mark_dirty)
            self.layers["labels"] = layer
        self.errors, self.clusters, self.cluster_index = None, [], -1
        if prediction is not None and reference is not None:
            try:
                ref_on_pred = (
                    reference if reference.same_grid_as(prediction) else reference.resampled_onto(prediction)
                )
                self.errors = error_map(prediction.array, ref_on_pred.array)
            except MedsegError as error:
                self._error(error)
        if self.errors is not None:
            data, kwargs, _ = labels_layer_data(
                prediction.with_array(self.errors), name=f"{name} errors", label_names=ERROR_NAMES
            )
            layer = self.viewer.add_labels(
                data, colormap=DirectLabelColormap(color_dict=ERROR_COLORS), opacity=0.8, **kwargs
            )
            layer.editable = False
            self.layers["errors"] = layer
            self.clusters = error_clusters(self.errors)
        self.current = name
        self.dirty = False
        if "labels" in self.layers:
            self.viewer.layers.selection.active = self.layers["labels"]
        self._select_row_of(name)
        self.message.setText("")
        self._describe_case()
        if self.errors is None or self.go_to_most_errors() is None:
            self.viewer.reset_view()
        return True

    def _describe_case(self) -> None:
        if self.dataset is None or self.current is None:
            self.info.setText("")
            return
        case = self.dataset.case(self.current)
        parts = [f"<b>{case.name}</b> ({case.status or 'no labels'})"]
        if case.missing:
            parts.append("missing: " + ", ".join(case.missing))
        if self.errors is not None:
            n_fp = int(np.count_nonzero(self.errors == 1))
            n_fn = int(np.count_nonzero(self.errors == 2))
            parts.append(
                f"{len(self.clusters)} error clusters; {n_fp} false-positive (red), "
                f"{n_fn} false-negative (blue) voxels"
            )
        self.info.setText("<br>".join(parts))

    def _mark_dirty(self, *_: Any) -> None:
        self.dirty = True

    def close_case(self) -> bool:
        """Save the open case if edited and remove its layers; ``False`` (case kept open) if saving failed."""
        if self.current is None:
            return True
        if self.dirty and not self.save_current():
            return False
        layers = self.viewer.layers
        # One batch: napari cleans its scene graph (a full garbage collection) once, not per layer.
        batch = layers.batched_update() if hasattr(layers, "batched_update") else contextlib.nullcontext()
        with batch:
            for layer in self.layers.values():
                if layer in layers:
                    layers.remove(layer)
        self.layers = {}
        self.current = None
        self.errors, self.clusters, self.cluster_index = None, [], -1
        self.dirty = False
        self._describe_case()
        return True

    # --- saving ----------------------------------------------------------------------------------
    def save_current(self) -> bool:
        """Save the open case's labels now (atomic, previous file kept as a backup); status ``corrected``.

        On failure the previous file is intact, the edit stays in the layer and
        a message says why; returns ``False``.
        """
        if self.dataset is None or self.current is None:
            return True
        layer = self.layers.get("labels")
        if layer is None or layer not in self.viewer.layers:
            self.dirty = False
            return True
        try:
            volume = volume_from_layer(layer)
            volume = volume.with_array(np.array(volume.array, copy=True))
            case = self.dataset.save_labels(self.current, volume, status="corrected")
        except MedsegError as error:
            self._error(f"not saved, the previous file is unchanged: {error}")
            return False
        self.dirty = False
        self.message.setText("")
        self.jobs.status.setText(f"saved {case.reference.name if case.reference else case.name}")
        for row, name in enumerate(self.case_order()):
            if name == case.name:
                self.table.item(row, 1).setText(case.status or "")
                self.table.item(row, 2).setText(", ".join(case.missing))
        self._describe_case()
        if case.evaluable:
            self.compute_metrics([case.name])  # the reference changed: its metrics too
        return True

    def _error(self, error: BaseException | str) -> None:
        self.message.setText(report_error(error))

    # --- failure browser ----------------------------------------------------------------------------
    def _go_to(self, index: Any) -> np.ndarray:
        """Centre the view on a voxel index of the error layer's grid (through its affine, in world mm)."""
        layer = self.layers.get("errors") or self.layers.get("labels")
        world = np.asarray(layer.data_to_world(np.asarray(index, dtype=float)), dtype=float)
        self.viewer.dims.set_point([0, 1, 2], tuple(world))
        if self.viewer.dims.ndisplay == 2:
            self.viewer.camera.center = tuple(world)
        return world

    def go_to_most_errors(self) -> int | None:
        """Show the slice (of the error layer's grid) with the most errors; return its index."""
        if self.errors is None:
            return None
        z = most_errors_slice(self.errors, axis=0)
        if z is None:
            show_info("no errors: the prediction equals the reference")
            return None
        ys, xs = np.nonzero(self.errors[z])
        self._go_to((z, ys.mean(), xs.mean()))
        return z

    def next_error_cluster(self) -> ErrorCluster | None:
        """Centre the view on the next error cluster (largest first, then round again)."""
        if not self.clusters:
            show_info("no error clusters in this case")
            return None
        self.cluster_index = (self.cluster_index + 1) % len(self.clusters)
        cluster = self.clusters[self.cluster_index]
        self._go_to(cluster.focus)
        self.jobs.status.setText(
            f"error cluster {self.cluster_index + 1}/{len(self.clusters)}: {cluster.size} voxels "
            f"({cluster.false_positives} false positive, {cluster.false_negatives} false negative)"
        )
        return cluster

    # --- plots -------------------------------------------------------------------------------------------
    def _draw_plots(self) -> None:
        """Per-label box plots of Dice and HD95 across cases; every case a clickable point."""
        figure = self.figure
        figure.clear()
        self._pick_cases = {}
        labels = self._label_ids()
        rows = case_table(self.metrics)
        axes = figure.subplots(1, 2)
        rng = np.random.default_rng(0)  # fixed jitter: the same picture every time
        for ax, (metric, title) in zip(axes, (("dice", "Dice"), ("hd95", "HD95 (mm)"))):
            ax.set_facecolor("#1e1f24")
            ax.tick_params(colors="#d0d0d0", labelsize=8)
            for spine in ax.spines.values():
                spine.set_color("#808080")
            hidden = 0
            data, positions = [], []
            for pos, label in enumerate(labels, 1):
                cases = [c for c, row in sorted(rows.items()) if f"{metric}_{label}" in row]
                values = np.array([rows[c][f"{metric}_{label}"] for c in cases], dtype=float)
                finite = np.isfinite(values)
                hidden += int((~finite).sum())
                if not finite.any():
                    continue
                data.append(values[finite])
                positions.append(pos)
                x = pos + rng.uniform(-0.18, 0.18, size=int(finite.sum()))
                points = ax.scatter(x, values[finite], s=14, color="#f0c040", zorder=3, picker=5)
                self._pick_cases[points] = [c for c, ok in zip(cases, finite) if ok]
            if data:
                ax.boxplot(
                    data,
                    positions=positions,
                    widths=0.5,
                    showfliers=False,
                    medianprops={"color": "#ff6060"},
                    boxprops={"color": "#d0d0d0"},
                    whiskerprops={"color": "#d0d0d0"},
                    capprops={"color": "#d0d0d0"},
                )
            ax.set_xticks(range(1, len(labels) + 1), [str(n)[:10] for n in labels.values()])
            ax.set_xlim(0.4, len(labels) + 0.6)
            note = f"\n({hidden} infinite not shown)" if hidden else ""
            ax.set_title(title + note, color="#e0e0e0", fontsize=9)
        if not labels:
            axes[0].text(
                0.5, 0.5, "no metrics yet", color="#d0d0d0", ha="center", transform=axes[0].transAxes
            )
        self.canvas.draw_idle()

    def _on_pick(self, event: Any) -> None:
        cases = self._pick_cases.get(event.artist)
        if cases and len(event.ind):
            self.open_case(cases[int(event.ind[0])])

    # --- shutdown -----------------------------------------------------------------------------------------
    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        """Save the open case and stop the timer and jobs before closing."""
        self._timer.stop()
        if self.dirty:
            self.save_current()
        if self.jobs.running:
            self.jobs.cancel()
            self.jobs.wait()
        super().closeEvent(event)
