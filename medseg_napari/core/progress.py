"""Progress reports and cancellation shared by every long job.

Long jobs (inference, training, batch metrics) take ``progress=`` (a callable
receiving :class:`Progress`) and ``cancel=`` (a :class:`CancelToken`), whether
they are called from a widget worker, the CLI (a progress bar) or a test.
Plain Python: no Qt, so the same types work headless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medseg_napari.core.errors import Cancelled

__all__ = ["CancelToken", "Cancelled", "Progress", "ProgressCallback", "ProgressTimer"]


@dataclass(frozen=True)
class Progress:
    """One progress report.

    Attributes
    ----------
    done, total : int
        Steps done out of ``total`` (``total`` may be 0 when unknown).
    message : str
        What is happening, in words.
    eta_s : float or None
        Estimated seconds left, when known.
    values : dict
        Job-specific numbers (for example ``{"loss": 0.3, "val_dice": 0.8}``).
    """

    done: int
    total: int
    message: str = ""
    eta_s: float | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Fraction done in ``[0, 1]`` (0 when the total is unknown)."""
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


class CancelToken:
    """A thread-safe cancel flag checked by long jobs between steps.

    Examples
    --------
    >>> token = CancelToken()
    >>> token.cancelled
    False
    >>> token.cancel()
    >>> token.cancelled
    True
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


class ProgressTimer:
    """Turns step counts into :class:`Progress` reports with an ETA.

    Examples
    --------
    >>> timer = ProgressTimer(total=10)
    >>> timer.report(5, "half way").done
    5
    """

    def __init__(self, total: int, callback: ProgressCallback | None = None) -> None:
        self.total = total
        self.callback = callback
        self.start = time.perf_counter()

    def report(self, done: int, message: str = "", **values: Any) -> Progress:
        """Build a report for ``done`` steps, send it to the callback and return it."""
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (self.total - done) if done and self.total else None
        report = Progress(done, self.total, message, eta, dict(values))
        if self.callback is not None:
            self.callback(report)
        return report
