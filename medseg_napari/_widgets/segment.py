"""Segment widget: one-click 3D U-Net segmentation of an image layer.

Thin: the model picker and the layer pickers collect parameters, the core's
:func:`~medseg_napari.core.model.inference.segment` runs in a :class:`JobPanel`
worker (progress with ETA, Cancel), and the result is added as a Labels layer on
the image's exact grid.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from napari.layers import Image
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medseg_napari._napari.layers import labels_layer_data, volume_from_layer
from medseg_napari._widgets._common import JobPanel, LayerPicker, report_error
from medseg_napari._widgets._models import ModelPicker
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.model.format import SegmentationModel, describe_labels, load_model
from medseg_napari.core.model.inference import SegmentationResult, segment
from medseg_napari.core.model.network import describe_device

__all__ = ["SegmentWidget"]



class SegmentWidget(QWidget):
    """Pick a model and an image layer (one per model channel), press Segment.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._models: dict[str, SegmentationModel] = {}
        self._pickers: list[LayerPicker] = []
        self.last_result: SegmentationResult | None = None
        self.last_layer: Any = None

        self.model_combo = ModelPicker(dialog_title="Load a segmentation model")
        self.model_combo.setToolTip("A shipped model, or a model file (.pt) trained with 'medseg train'")
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        self.model_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.device_label = QLabel(describe_device())
        self.channels_form = QFormLayout()
        self.segment_button = QPushButton("Segment")
        self.segment_button.clicked.connect(self.run)
        self.job = JobPanel()
        self.job.finished.connect(self._on_finished)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        form.addRow("Runs on", self.device_label)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.model_info)
        layout.addLayout(self.channels_form)
        layout.addWidget(self.segment_button)
        layout.addWidget(self.job)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self.model_combo.model_changed.connect(self._on_model_changed)
        self._on_model_changed(self.model_combo.current_key)

    # --- models ----------------------------------------------------------------
    def refresh_models(self) -> None:
        """Reload the picker: shipped models, this session's model files, "Load model file..."."""
        self.model_combo.refresh()

    def add_model_path(self, path: str | Path, *, select: bool = True) -> SegmentationModel:
        """Add a model file to the picker (and select it); raise a clear error if it is not a model."""
        current = self.model_combo.current_key
        model = self.model_combo.add_path(path)
        self._models[self.model_combo.current_key] = model
        if not select:
            self.model_combo.select(current)
        return model

    def select_model(self, name: str) -> None:
        """Choose a model by its shipped name (or the path of an added model file)."""
        if self.model_combo.findData(name) < 0:
            raise MedsegError(f"no model '{name}' in the list")
        self.model_combo.select(name)

    def _on_model_changed(self, key: str) -> None:
        try:
            model = self.model()
        except MedsegError as error:
            self.model_info.setText(f"<b>cannot load:</b> {html.escape(str(error))}")
            self._build_channel_pickers(None)
            return
        self._show_model(model)

    def model(self) -> SegmentationModel | None:
        """The selected model (loaded once and cached), or ``None``."""
        key, path = self.model_combo.current_key, self.model_combo.current_path()
        if path is None:
            return None
        if key not in self._models:
            self._models[key] = load_model(path)
        return self._models[key]

    def _show_model(self, model: SegmentationModel | None) -> None:
        if model is None:
            self.model_info.setText("no model")
            self._build_channel_pickers(None)
            return
        dice = model.training.get("val_dice") or {}
        dice_text = ", ".join(f"{model.labels.get(int(k), k)} {float(v):.2f}" for k, v in dice.items())
        lines = [f"<b>labels:</b> {html.escape(describe_labels(model.labels))}"]
        if dice_text:
            lines.append(f"<b>validation Dice:</b> {html.escape(dice_text)}")
        parent = model.training.get("parent")
        if isinstance(parent, dict) and parent.get("name"):
            lines.append(f"<b>fine-tuned from:</b> {html.escape(str(parent['name']))}")
        self.model_info.setText("<br>".join(lines))
        self._build_channel_pickers(model)

    def _build_channel_pickers(self, model: SegmentationModel | None) -> None:
        while self.channels_form.rowCount():
            self.channels_form.removeRow(0)
        self._pickers = []
        if model is None:
            return
        for name in model.channels:
            picker = LayerPicker(self.viewer, Image)
            picker.setToolTip(f"the image layer holding the model's '{name}' channel")
            self._pickers.append(picker)
            label = "Image" if len(model.channels) == 1 else name
            self.channels_form.addRow(label, picker)

    @property
    def image_pickers(self) -> list[LayerPicker]:
        """One layer picker per model input channel, in the model's channel order."""
        return list(self._pickers)

    # --- running ------------------------------------------------------------------
    def run(self) -> None:
        """Segment the chosen image layer(s) in a worker; the result arrives as a Labels layer."""
        try:
            model = self.model()
            if model is None:
                raise MedsegError("choose a model first")
            layers = [p.layer() for p in self._pickers]
            if not layers or any(layer is None for layer in layers):
                raise MedsegError("choose a 3D image layer for every model channel")
            volumes = [volume_from_layer(layer) for layer in layers]
            names = {layer.name for layer in layers}
            if len(names) != len(layers) and len(layers) > 1:
                raise MedsegError("each model channel needs a different image layer")
        except MedsegError as error:
            self.result_label.setText(html.escape(report_error(error)))
            return
        self._job_image = layers[0]
        self._job_model = model
        self.result_label.setText("")
        self.segment_button.setEnabled(False)
        self.job.start(segment, volumes, model)

    def _on_finished(self, result: SegmentationResult) -> None:
        self.segment_button.setEnabled(True)
        self.last_result = result
        image = self._job_image
        name = f"{image.name} {result.model_name}"
        data, kwargs, _ = labels_layer_data(result.labels, name=name, label_names=result.label_names)
        kwargs["metadata"]["image"] = image.name
        kwargs["metadata"]["model"] = result.model_name
        names = ["background", *(result.label_names.get(v, str(v)) for v in range(1, max(result.label_names) + 1))]
        kwargs["features"] = {"index": list(range(len(names))), "name": names}
        layer = self.viewer.add_labels(data, **kwargs)
        self.last_layer = layer
        legend = []
        for value, label in sorted(result.label_names.items()):
            rgba = layer.get_color(value)
            colour = "#{:02x}{:02x}{:02x}".format(*tuple(int(255 * c) for c in rgba[:3])) if rgba is not None else "#888"
            count = int((data == value).sum())
            legend.append(f"<span style='color:{colour}'>&#9632;</span> {value} {html.escape(label)} ({count} voxels)")
        notes = "".join(f"<br><i>{html.escape(n)}</i>" for n in result.notes)
        self.result_label.setText(
            f"<b>{html.escape(name)}</b>: {result.seconds:.1f} s on {html.escape(result.device)}<br>"
            + "<br>".join(legend)
            + notes
        )

    def _on_failed(self, message: str) -> None:
        self.segment_button.setEnabled(True)
        self.result_label.setText(html.escape(message))

    def _on_cancelled(self) -> None:
        self.segment_button.setEnabled(True)
        self.result_label.setText("cancelled; no layer added")
