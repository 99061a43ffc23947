"""Fine-tune widget: add corrected cases to a workspace, fine-tune a model, compare before/after.

Thin: the pickers collect parameters; :class:`~medseg_napari.core.workspace.Workspace`
stores the cases and :func:`~medseg_napari.core.model.finetune.finetune` trains
and scores in a :class:`JobPanel` worker. The live plot (matplotlib in the dock)
follows the training loss and the validation Dice from the progress reports'
``values``; when the job ends the before/after table is shown and the new model
is offered by every Segment widget (:mod:`medseg_napari._widgets._models`).
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg_napari._napari.layers import volume_from_layer
from medseg_napari._widgets._common import JobPanel, LayerPicker, report_error, show_info
from medseg_napari._widgets._models import ModelPicker, add_user_model
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.model.finetune import FineTuneResult, finetune, ready_summary
from medseg_napari.core.model.format import SegmentationModel, load_model
from medseg_napari.core.model.registry import list_models
from medseg_napari.core.progress import Progress
from medseg_napari.core.workspace import Workspace

__all__ = ["FineTuneWidget", "LossDicePlot"]

_BG, _FG = "#262930", "#d6d6d6"


class LossDicePlot(FigureCanvasQTAgg):
    """Training loss (left axis) and validation Dice (right axis, 0-1) against the iteration."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(3.6, 2.4), dpi=90, facecolor=_BG)
        super().__init__(self.figure)
        self.setMinimumHeight(200)
        self.ax_loss = self.figure.add_subplot(111)
        self.ax_dice = self.ax_loss.twinx()
        self.clear()

    def clear(self) -> None:
        """Forget the curves."""
        self.loss: list[tuple[int, float]] = []
        self.dice: list[tuple[int, float]] = []
        self._last_draw = 0.0
        self._redraw()

    def add(self, values: dict[str, Any]) -> None:
        """Add one report's ``values`` (``iteration`` with ``loss`` and/or ``val_dice``)."""
        if "iteration" not in values:
            return
        it = int(values["iteration"])
        if "val_dice" in values and values["val_dice"] is not None:
            self.dice.append((it, float(values["val_dice"])))
        elif "loss" in values:
            self.loss.append((it, float(values["loss"])))
        # Redraw at most 4 times a second, and at every validation.
        if "val_dice" in values or time.perf_counter() - self._last_draw > 0.25:
            self._redraw()

    def _redraw(self) -> None:
        self._last_draw = time.perf_counter()
        for ax in (self.ax_loss, self.ax_dice):
            ax.clear()
            ax.set_facecolor(_BG)
            ax.tick_params(colors=_FG, labelsize=7)
            for spine in ax.spines.values():
                spine.set_color("#5a5f6b")
        if self.loss:
            xs, ys = zip(*self.loss)
            self.ax_loss.plot(xs, ys, color="#f0a830", lw=1, label="training loss")
        if self.dice:
            xs, ys = zip(*self.dice)
            self.ax_dice.plot(xs, ys, "o-", color="#4fc3f7", ms=3, lw=1.2, label="validation Dice")
        self.ax_dice.set_ylim(0, 1)
        self.ax_dice.yaxis.tick_right()  # clear() puts a twin axis back on the left
        self.ax_dice.yaxis.set_label_position("right")
        self.ax_loss.set_xlabel("iteration", color=_FG, fontsize=7)
        self.ax_loss.set_ylabel("training loss", color="#f0a830", fontsize=7)
        self.ax_dice.set_ylabel("validation Dice", color="#4fc3f7", fontsize=7)
        self.ax_loss.set_xlim(left=0)
        self.figure.tight_layout(pad=0.4)
        self.draw_idle()


class FineTuneWidget(QWidget):
    """Workspace of corrected cases, fine-tuning with a live plot, before/after table.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.workspace: Workspace | None = None
        self.last_result: FineTuneResult | None = None
        self._job_output: Path | None = None

        # --- model and workspace ---
        self.model_combo = ModelPicker(dialog_title="Load a model to fine-tune")
        self.model_combo.setToolTip("The starting model (its file is never changed)")
        self.workspace_edit = QLineEdit()
        self.workspace_edit.setPlaceholderText("a workspace folder")
        self.workspace_edit.returnPressed.connect(lambda: self._try(self.open_workspace, self.workspace_edit.text()))
        open_button = QPushButton("Open...")
        open_button.clicked.connect(self._browse_open)
        new_button = QPushButton("New...")
        new_button.clicked.connect(self._browse_new)
        row = QHBoxLayout()
        row.addWidget(self.workspace_edit, 1)
        row.addWidget(open_button)
        row.addWidget(new_button)
        self.ready_label = QLabel("no workspace open")
        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        form.addRow("Workspace", row)
        form.addRow("", self.ready_label)

        # --- add to training set ---
        self.image_picker = LayerPicker(napari_viewer, Image)
        self.labels_picker = LayerPicker(napari_viewer, Labels)
        self.case_edit = QLineEdit()
        self.case_edit.setPlaceholderText("case name (default: the image layer's)")
        self.status_combo = QComboBox()
        self.status_combo.addItems(["corrected", "reviewed"])
        self.add_button = QPushButton("Add to training set")
        self.add_button.clicked.connect(lambda: self._try(self.add_to_training_set))
        add_box = QGroupBox("Add a corrected case")
        add_form = QFormLayout(add_box)
        add_form.addRow("Image", self.image_picker)
        add_form.addRow("Labels", self.labels_picker)
        add_form.addRow("Case", self.case_edit)
        add_form.addRow("Status", self.status_combo)
        add_form.addRow(self.add_button)

        # --- fine-tune ---
        self.iterations_spin = QSpinBox()
        self.iterations_spin.setRange(1, 100000)
        self.iterations_spin.setValue(200)
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("<workspace>/models/<model>-ft.pt")
        self.finetune_button = QPushButton("Fine-tune")
        self.finetune_button.clicked.connect(self.run)
        self.job = JobPanel()
        self.job.finished.connect(self._on_finished)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.progressed.connect(self._on_progress)
        self.plot = LossDicePlot()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["label", "before", "after", "change"])
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(120)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        tune_box = QGroupBox("Fine-tune")
        tune_form = QFormLayout(tune_box)
        tune_form.addRow("Iterations", self.iterations_spin)
        tune_form.addRow("New model", self.output_edit)
        tune_form.addRow(self.finetune_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(add_box)
        layout.addWidget(tune_box)
        layout.addWidget(self.job)
        layout.addWidget(self.plot)
        layout.addWidget(self.table)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self.model_combo.model_changed.connect(lambda _key: self._suggest_output())

    # --- helpers ---------------------------------------------------------------------
    def _try(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except MedsegError as error:
            self.result_label.setText(html.escape(report_error(error)))
            return None

    def confirm(self, question: str) -> bool:
        """Ask the user a yes/no question (tests replace this method)."""
        answer = QMessageBox.question(self, "Fine-tune", question, QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    # --- models ------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Shipped models, then this session's model files (fine-tuned or loaded), then "Load model file..."."""
        self.model_combo.refresh()

    def set_model_path(self, path: str | Path) -> SegmentationModel:
        """Offer a model file (checked) and select it as the starting model."""
        return self.model_combo.add_path(path)

    def model_path(self) -> Path | None:
        """The chosen starting model's file."""
        return self.model_combo.current_path()

    # --- workspace ----------------------------------------------------------------------
    def _browse_open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a workspace")
        if folder:
            self._try(self.open_workspace, folder)

    def _browse_new(self) -> None:
        folder, _ = QFileDialog.getSaveFileName(self, "New workspace folder")
        if folder:
            self._try(self.create_workspace, folder)

    def open_workspace(self, path: str | Path) -> Workspace:
        """Open a workspace (or Decathlon folder); its fine-tuned models become selectable."""
        workspace = Workspace.open(path)
        self._set_workspace(workspace)
        for info in list_models(workspace.root / "models"):
            add_user_model(info.path)
        self.refresh_models()
        return workspace

    def create_workspace(self, path: str | Path) -> Workspace:
        """Make an empty workspace with the chosen model's label and channel names."""
        path_str = self.model_path()
        if path_str is None:
            raise MedsegError("choose a model first (the workspace takes its label names)")
        model = load_model(path_str)
        workspace = Workspace.create(path, label_names=model.labels, channel_names=model.channels)
        self._set_workspace(workspace)
        return workspace

    def _set_workspace(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.workspace_edit.setText(str(workspace.root))
        self.update_ready()
        self._suggest_output()

    def update_ready(self) -> None:
        """Show how many cases are ready for training."""
        if self.workspace is None:
            self.ready_label.setText("no workspace open")
            return
        self.ready_label.setText(ready_summary(self.workspace))

    def _suggest_output(self) -> None:
        path = self.model_path()
        if self.workspace is None or path is None:
            return
        stem = path.name[: -len(".pt")]
        stem = re.sub(r"-ft\d*$", "", stem)
        folder = self.workspace.root / "models"
        n = 1
        while (folder / f"{stem}-ft{n}.pt").exists():
            n += 1
        self.output_edit.setText(str(folder / f"{stem}-ft{n}.pt"))

    def add_to_training_set(self) -> None:
        """Write the chosen image and labels layers into the workspace as a case (asks before replacing one)."""
        if self.workspace is None:
            raise MedsegError("open or create a workspace first")
        image_layer, labels_layer = self.image_picker.layer(), self.labels_picker.layer()
        if image_layer is None or labels_layer is None:
            raise MedsegError("choose a 3D image layer and its corrected labels layer")
        name = self.case_edit.text().strip() or re.sub(r"[^A-Za-z0-9._-]+", "_", image_layer.name).strip("._-")
        image = volume_from_layer(image_layer)
        labels = volume_from_layer(labels_layer)
        existing = {c.name for c in self.workspace.cases}
        overwrite = False
        if name in existing:
            if not self.confirm(f"The workspace has a case '{name}' already. Replace it?"):
                self.result_label.setText(f"case '{html.escape(name)}' kept as it was")
                return
            overwrite = True
        case = self.workspace.add_case(name, image, labels, status=self.status_combo.currentText(), overwrite=overwrite)
        self.update_ready()
        self.result_label.setText(f"added case '{html.escape(case.name)}' ({case.status})")
        show_info(f"added case '{case.name}' to {self.workspace.root.name}")

    # --- running ---------------------------------------------------------------------------
    def run(self) -> None:
        """Fine-tune the chosen model on the workspace's ready cases, in a worker."""
        try:
            parent = self.model_path()
            if parent is None:
                raise MedsegError("choose a model first")
            if self.workspace is None:
                raise MedsegError("open or create a workspace first")
            text = self.output_edit.text().strip()
            if not text:
                self._suggest_output()
                text = self.output_edit.text().strip()
            output = Path(text).expanduser()
            if output.parent == self.workspace.root / "models":
                output.parent.mkdir(exist_ok=True)
        except (MedsegError, OSError) as error:
            self.result_label.setText(html.escape(report_error(str(error))))
            return
        self.plot.clear()
        self.table.setRowCount(0)
        self.result_label.setText("")
        self.finetune_button.setEnabled(False)
        self._job_output = output
        self.job.start(finetune, parent, self.workspace.root, output=output, iterations=self.iterations_spin.value())

    def _on_progress(self, report: Progress) -> None:
        self.plot.add(report.values)

    def _register(self, path: Path) -> None:
        """Offer a new model file here and in every Segment widget of the viewer."""
        add_user_model(path)
        self.refresh_models()
        try:
            docks = dict(self.viewer.window.dock_widgets)
        except (AttributeError, RuntimeError):
            docks = {}
        from medseg_napari._widgets.segment import SegmentWidget

        for widget in docks.values():
            if isinstance(widget, SegmentWidget):
                widget.refresh_models()

    def _on_finished(self, result: FineTuneResult) -> None:
        self.finetune_button.setEnabled(True)
        self.last_result = result
        self.plot._redraw()
        rows = result.table()
        self.table.setRowCount(len(rows))
        for r, (name, before, after) in enumerate(rows):
            cells = [name, *("n/a" if x is None else f"{x:.3f}" for x in (before, after)),
                     "" if before is None or after is None else f"{after - before:+.3f}"]  # fmt: skip
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        header = self.table.horizontalHeader().height()
        self.table.setFixedHeight(header + sum(self.table.rowHeight(r) for r in range(len(rows))) + 4)
        self.job.status.setText("finished")
        self._register(result.path)
        notes = "".join(f"<br><i>{html.escape(n)}</i>" for n in result.notes)
        self.result_label.setText(
            f"<b>{html.escape(result.path.name)}</b> (fine-tuned from {html.escape(result.parent)}): "
            f"{result.iterations} iterations in {result.seconds:.0f} s on {html.escape(result.device)}; "
            f"now selectable in the Segment widget.{notes}"
        )
        self._suggest_output()

    def _on_failed(self, message: str) -> None:
        self.finetune_button.setEnabled(True)
        self.result_label.setText(html.escape(message))

    def _on_cancelled(self) -> None:
        self.finetune_button.setEnabled(True)
        output = self._job_output
        if output is not None and output.exists():
            self._register(output)
            self.result_label.setText(
                f"cancelled; the best checkpoint so far is kept in {html.escape(output.name)} "
                "(selectable in the Segment widget); the starting model is untouched"
            )
        else:
            self.result_label.setText("cancelled before any checkpoint; the starting model is untouched")
