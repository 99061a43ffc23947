"""Writing core edits into a napari Labels layer through napari's own undo history.

Every classical tool computes a :class:`~medseg_napari.core.classical.editing.LabelEdit`
without touching the layer (``in_place=False``); :func:`apply_edit` then writes
the changed voxels and records them in napari's history inside
``Labels.block_history()`` (the atom ``Labels.data_setitem`` records; see
:func:`apply_edit` for why not ``data_setitem`` itself). The edit becomes ONE
step of the layer's history, next to the user's paint strokes, so napari's Ctrl+Z / Ctrl+Shift+Z (on the
selected Labels layer) and the widgets' Undo / Redo buttons undo and redo it.
napari keeps 100 steps per layer. The history stores only the changed voxels
(their indices, as 16-bit integers where the grid allows, and their old and new
values), never a copy of the volume.

One history rather than a second stack of our own: two stacks on the same
layer would undo each other's edits out of order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.layers import Image, Labels
from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QPushButton, QSpinBox, QWidget

from medseg_napari._napari.layers import geometry_of_layer, new_labels_for
from medseg_napari._widgets._common import LayerPicker, report_error
from medseg_napari.core.classical.editing import LabelEdit
from medseg_napari.core.errors import GeometryMismatchError, MedsegError

__all__ = ["LabelTarget", "UndoButtons", "apply_edit", "check_labels_on_image_grid"]

#: Metadata key marking the plugin's preview layers (never a target of an edit).
PREVIEW_KEY = "medseg_preview"


def apply_edit(layer: Labels, edit: LabelEdit) -> int:
    """Write ``edit`` into ``layer`` as one undoable step; return the number of voxels changed."""
    if edit.is_empty:
        return 0
    index, old, new = edit.indices()
    # Not ``layer.data_setitem``: on a layer whose displayed slice is a view of the
    # data (numpy, small integer labels), napari 0.9 also writes the colour-texture
    # values of the "visible" voxels into that view, and with an oblique affine the
    # view is another slice than the one it thinks is shown -- the data gets
    # corrupted. We record the same history atom data_setitem records (indices,
    # old values, new values), write the data ourselves and refresh.
    with layer.block_history():
        layer._save_history((index, old, new))
    layer.data[index] = new
    layer.refresh()
    return int(new.size)


def check_labels_on_image_grid(image: Image, labels: Labels) -> None:
    """Raise a one-line error unless ``labels`` lies on ``image``'s voxel grid."""
    if labels.data.shape != image.data.shape:
        raise GeometryMismatchError(
            f"the labels layer '{labels.name}' has shape {tuple(labels.data.shape)} but the image "
            f"'{image.name}' has shape {tuple(image.data.shape)}; choose or create labels on the image grid"
        )
    if not geometry_of_layer(labels).is_close(geometry_of_layer(image)):
        raise GeometryMismatchError(
            f"the labels layer '{labels.name}' is not on the grid of the image '{image.name}' "
            "(spacing, origin or direction differ)"
        )


class UndoButtons(QWidget):
    """Undo and Redo buttons acting on the history of the layer ``get_layer()`` returns."""

    def __init__(self, get_layer: Callable[[], Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._get_layer = get_layer
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last change of the labels layer (as Ctrl+Z on the layer)")
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip("Redo the last undone change (as Ctrl+Shift+Z on the layer)")
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.undo_button)
        row.addWidget(self.redo_button)

    def _layer(self) -> Labels:
        layer = self._get_layer()
        if not isinstance(layer, Labels):
            raise MedsegError("choose a labels layer first")
        return layer

    def undo(self) -> None:
        """Undo the last step of the layer's history."""
        try:
            self._layer().undo()
        except MedsegError as error:
            report_error(error)

    def redo(self) -> None:
        """Redo the last undone step."""
        try:
            self._layer().redo()
        except MedsegError as error:
            report_error(error)


class LabelTarget(QWidget):
    """Where a result goes: a labels layer (or a new one on the image grid) and a label value."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layers = LayerPicker(viewer, Labels, allow_none=True)
        self.layers.setItemText(0, "(new labels layer)")
        self.layers.setToolTip("Labels layer to write into; a new one on the image grid is made if none")
        self.value = QSpinBox()
        self.value.setRange(1, 65535)
        self.value.setValue(1)
        self.value.setToolTip("Label value written; other labels are never touched")
        self.layers.currentIndexChanged.connect(self._sync_value)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Labels", self.layers)
        form.addRow("Label", self.value)

    def _sync_value(self, *_: Any) -> None:
        if self.layers.count() and self.layers.itemText(0) != "(new labels layer)":
            self.layers.setItemText(0, "(new labels layer)")
        layer = self.layers.layer()
        if isinstance(layer, Labels) and not layer.metadata.get(PREVIEW_KEY):
            self.value.setValue(max(1, int(layer.selected_label)))

    def layer(self) -> Labels | None:
        """The chosen labels layer (``None``: a new one will be made)."""
        layer = self.layers.layer()
        if layer is not None and layer.metadata.get(PREVIEW_KEY):
            raise MedsegError(f"'{layer.name}' is a preview; choose another labels layer to write into")
        return layer

    def checked(self, image: Image) -> Labels | None:
        """The chosen labels layer checked against ``image``'s grid, or ``None`` for a new one."""
        layer = self.layer()
        if layer is not None:
            check_labels_on_image_grid(image, layer)
        return layer

    def create(self, image: Image) -> Labels:
        """Make a new empty labels layer on ``image``'s grid and choose it."""
        layer = new_labels_for(self.viewer, image)
        self.layers.set_layer(layer)
        return layer
