"""Pieces shared by the plugin's widgets: layer pickers, error reporting, job panel.

Long work runs through :class:`JobPanel`: the core function runs in a napari
``thread_worker`` with ``progress=`` and ``cancel=`` (see
:mod:`medseg_napari.core.progress`); progress reports cross to the GUI thread
through a Qt signal, and the panel shows a bar, the message, the ETA and a
Cancel button. The UI never blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.layers import Image, Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.progress import CancelToken, Progress

__all__ = ["JobPanel", "LayerPicker", "report_error", "show_info"]


def report_error(error: BaseException | str) -> str:
    """Show a one-line error as a napari notification and return the text."""
    text = str(error) if isinstance(error, (MedsegError, str)) else f"{type(error).__name__}: {error}"
    show_error(text)
    return text


class LayerPicker(QComboBox):
    """A combo box of the viewer's layers of one type, kept up to date.

    Parameters
    ----------
    viewer : napari.Viewer
    layer_type : type
        ``Image``, ``Labels`` or ``Points``.
    ndim : int, optional
        Only layers of this dimensionality (default 3).
    allow_none : bool
        Offer an empty ``"(none)"`` entry first.
    """

    def __init__(
        self,
        viewer: Any,
        layer_type: type[Layer] = Image,
        *,
        ndim: int | None = 3,
        allow_none: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_type = layer_type
        self.ndim = ndim
        self.allow_none = allow_none
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        events = viewer.layers.events
        events.inserted.connect(self.refresh)
        events.removed.connect(self.refresh)
        events.reordered.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        events.inserted.connect(lambda e: e.value.events.name.connect(self.refresh))
        self.refresh()

    def _candidates(self) -> list[Layer]:
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, self.layer_type)
            and (self.ndim is None or layer.ndim == self.ndim)
            and not (isinstance(layer, Image) and layer.rgb)
        ]

    def refresh(self, *_: Any) -> None:
        """Reload the layer list, keeping the current choice when it still exists."""
        current = self.currentText()
        self.blockSignals(True)
        self.clear()
        if self.allow_none:
            self.addItem("(none)")
        names = [layer.name for layer in self._candidates()]
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        elif names and not self.allow_none:
            # Prefer the selected layer of this type, then the top-most one.
            active = self.viewer.layers.selection.active
            self.setCurrentText(active.name if active is not None and active.name in names else names[-1])
        self.blockSignals(False)
        self.currentIndexChanged.emit(self.currentIndex())

    def layer(self) -> Layer | None:
        """The chosen layer, or ``None``."""
        name = self.currentText()
        for layer in self._candidates():
            if layer.name == name:
                return layer
        return None

    def set_layer(self, layer: Layer) -> None:
        """Choose ``layer``."""
        self.refresh()
        self.setCurrentText(layer.name)


class _Bridge(QObject):
    """Carries progress reports from the worker thread to the GUI thread."""

    progressed = Signal(object)


class JobPanel(QWidget):
    """Progress bar, status text and Cancel button for one long job at a time.

    ``start(func, *args, **kwargs)`` calls ``func(*args, progress=cb, cancel=token,
    **kwargs)`` in a worker thread. When it returns, :attr:`finished` is emitted with
    its result; on an error, :attr:`failed` with a one-line message (also shown as a
    notification); on cancel, :attr:`cancelled`.
    """

    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    progressed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self._bridge = _Bridge()
        self._bridge.progressed.connect(self._on_progress, Qt.QueuedConnection)
        self._token: CancelToken | None = None
        self.worker: Any = None

    @property
    def running(self) -> bool:
        """Whether a job is running."""
        return self.worker is not None

    def start(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` in a worker thread with progress and cancel; return the worker."""
        if self.running:
            raise MedsegError("a job is already running; wait for it or cancel it")
        token = CancelToken()
        self._token = token
        bridge = self._bridge

        def run() -> Any:
            return func(*args, progress=bridge.progressed.emit, cancel=token, **kwargs)

        # Errors go to _on_errored (a one-line message), not re-raised in the GUI thread.
        worker = create_worker(run, _ignore_errors=True)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.bar.setValue(0)
        self.bar.setFormat("starting...")
        self.status.setText("")
        self.cancel_button.setEnabled(True)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        if self._token is not None:
            self._token.cancel()
            self.status.setText("cancelling...")

    def _on_progress(self, report: Progress) -> None:
        self.bar.setValue(int(report.fraction * 1000))
        eta = f" - {report.eta_s:.0f} s left" if report.eta_s is not None else ""
        self.bar.setFormat(f"{report.fraction * 100:.0f}%{eta}")
        self.status.setText(report.message)
        self.progressed.emit(report)

    def _on_returned(self, result: Any) -> None:
        if self._token is not None and self._token.cancelled:
            self._finish_cancelled()
            return
        self.bar.setValue(1000)
        self.bar.setFormat("done")
        self.finished.emit(result)

    def _finish_cancelled(self) -> None:
        self.bar.setValue(0)
        self.bar.setFormat("cancelled")
        self.status.setText("cancelled")
        self.cancelled.emit()

    def _on_errored(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self._finish_cancelled()
            return
        self.bar.setFormat("failed")
        self.failed.emit(report_error(error))

    def _on_finished(self) -> None:
        self.worker = None
        self._token = None
        self.cancel_button.setEnabled(False)

    def wait(self, timeout_ms: int = 60000) -> None:
        """Block until the job ends (for tests and shutdown)."""
        if self.worker is not None:
            self.worker.quit()
            self.worker.await_workers(msecs=timeout_ms)



