"""Shipped models: ``medseg_napari/models/<name>.pt`` with a model card ``<name>.md``.

A model card is markdown; its first paragraph after the title is the summary
shown by ``medseg models`` and in the Segment widget. Every shipped file is at
most :data:`MAX_MODEL_BYTES`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medseg_napari.core.errors import MedsegError

__all__ = ["MAX_MODEL_BYTES", "MODELS_DIR", "ModelInfo", "list_models", "resolve_model"]

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
MAX_MODEL_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class ModelInfo:
    """A shipped model: name, file, card and the card's summary."""

    name: str
    path: Path
    card: Path | None
    summary: str
    size_bytes: int


def _summary(card: Path | None) -> str:
    if card is None or not card.exists():
        return ""
    lines = card.read_text(encoding="utf-8").splitlines()
    paragraph: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("#") or (not text and not paragraph):
            if paragraph:
                break
            continue
        if not text:
            break
        paragraph.append(text)
    return " ".join(paragraph)


def list_models(folder: str | os.PathLike | None = None) -> list[ModelInfo]:
    """The shipped models (``*.pt`` in :data:`MODELS_DIR`), sorted by name.

    Examples
    --------
    >>> "phantom" in [m.name for m in list_models()]
    True
    """
    folder = Path(folder) if folder is not None else MODELS_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.pt")):
        if path.name.startswith(".") or path.name.endswith(".state.pt"):
            continue  # hidden files and resumable training states are not models
        name = path.name[: -len(".pt")]
        card = path.with_suffix(".md")
        out.append(ModelInfo(name, path, card if card.exists() else None, _summary(card), path.stat().st_size))
    return out


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped model's name, or an existing ``.pt`` path.

    Raises
    ------
    MedsegError
        Neither a shipped model nor an existing file (the message lists the shipped models).

    Examples
    --------
    >>> resolve_model("phantom").name
    'phantom.pt'
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    for info in list_models():
        if info.name == text:
            return info.path
    known = ", ".join(m.name for m in list_models()) or "none"
    if path.suffix == ".pt" or os.sep in text or "/" in text:
        raise MedsegError(f"{text}: no such model file")
    raise MedsegError(f"unknown model '{text}' (shipped models: {known}; or give a .pt file)")
