"""Model files added during a session (fine-tuned or loaded), shared by the widgets.

A fine-tuned model registered here with :func:`add_user_model` is offered by
every Segment widget's picker (:meth:`SegmentWidget.refresh_models` reads
:func:`user_models`), including widgets opened later.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["add_user_model", "clear_user_models", "user_models"]

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
