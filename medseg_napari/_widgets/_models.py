"""Model files added during a session (fine-tuned or loaded), shared by the widgets.

A model file registered here with :func:`add_user_model` (fine-tuned, or loaded
with "Load model file...") is offered by every :class:`ModelPicker`, including
pickers of widgets opened later.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QFileDialog, QWidget

from medseg_napari._widgets._common import report_error
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.model.format import SegmentationModel, load_model
from medseg_napari.core.model.registry import list_models

__all__ = ["LOAD_ITEM", "ModelPicker", "add_user_model", "clear_user_models", "user_models"]

LOAD_ITEM = "Load model file..."

_USER_MODELS: list[Path] = []


def add_user_model(path: str | Path) -> Path:
    """Remember a model file for this session's model pickers; return its resolved path."""
    path = Path(path).expanduser().resolve()
    if path not in _USER_MODELS:
        _USER_MODELS.append(path)
    return path


def user_models() -> list[Path]:
    """The model files added this session that still exist, oldest first."""
    return [p for p in _USER_MODELS if p.is_file()]


def clear_user_models() -> None:
    """Forget every added model file (for tests)."""
    _USER_MODELS.clear()


class ModelPicker(QComboBox):
    """A combo box of models: the shipped ones, this session's model files, "Load model file...".

    Used by the Segment and Fine-tune widgets. Item data is the model's key: a shipped
    model's name, or the resolved path of a model file. :attr:`model_changed` is emitted
    with the key whenever the choice changes.
    """

    model_changed = Signal(str)

    def __init__(self, *, dialog_title: str = "Load a model", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dialog_title = dialog_title
        self.paths: dict[str, Path] = {}
        self.current_key = ""
        self.activated.connect(self._on_activated)
        self.refresh()

    def refresh(self) -> None:
        """Reload the list, keeping the current choice when it still exists."""
        shipped = {info.name: info.path for info in list_models()}
        self.paths = {**shipped, **{str(p): p for p in user_models()}}
        self.blockSignals(True)
        self.clear()
        for key, path in self.paths.items():
            self.addItem(key if key in shipped else path.name, key)
        self.addItem(LOAD_ITEM, None)
        self.blockSignals(False)
        self.select(self.current_key if self.current_key in self.paths else next(iter(self.paths), ""))

    def select(self, key: str) -> None:
        """Choose the model with this key ("" for none)."""
        index = self.findData(key)
        if index >= 0:
            self.setCurrentIndex(index)
        self.current_key = key if index >= 0 else ""
        self.model_changed.emit(self.current_key)

    def current_path(self) -> Path | None:
        """The chosen model's file, or ``None``."""
        return self.paths.get(self.current_key)

    def add_path(self, path: str | Path) -> SegmentationModel:
        """Check a model file (a clear error if it is not one), offer it everywhere and choose it."""
        model = load_model(path)
        resolved = add_user_model(path)
        self.refresh()
        self.select(str(resolved))
        return model

    def _on_activated(self, index: int) -> None:
        key = self.itemData(index)
        if key is not None:
            self.select(str(key))
            return
        path, _ = QFileDialog.getOpenFileName(self, self.dialog_title, "", "Model files (*.pt)")
        if path:
            try:
                self.add_path(path)
                return
            except MedsegError as error:
                report_error(error)
        self.select(self.current_key)  # back to the previous choice
