"""The shipped hippocampus-mri model: listed, reproduces its card, orientation-invariant."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medseg_napari.cli import main
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.io import read_volume
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model.format import load_model
from medseg_napari.core.model.inference import segment
from medseg_napari.core.model.registry import list_models, resolve_model
from medseg_napari.core.volume import Volume

NAME = "hippocampus-mri"


@pytest.fixture(scope="module")
def model():
    return load_model(resolve_model(NAME))


def _card_dice(card_text: str) -> dict[int, float]:
    """The validation Dice table of the model card: rows like ``| 1 anterior | 0.891 |``."""
    rows = re.findall(r"^\|\s*(\d+)\s+\w+\s*\|\s*([0-9.]+)\s*\|", card_text, flags=re.MULTILINE)
    return {int(v): float(d) for v, d in rows}


def test_listed_with_its_card(capsys):
    (info,) = [m for m in list_models() if m.name == NAME]
    assert info.size_bytes <= 10 * 1024 * 1024
    assert info.card is not None and "Decathlon" in info.card.read_text()
    assert main(["models"]) == 0
    assert NAME in capsys.readouterr().out


def test_reproduces_the_validation_dice_of_its_card(model, data_dir):
    root = data_dir / "hippocampus"
    cases = model.training["val_cases"]
    assert len(cases) >= 20
    scores: dict[int, list[float]] = {1: [], 2: []}
    for name in cases:
        image = read_volume(root / "imagesTr" / f"{name}.nii.gz")
        reference = read_volume(root / "labelsTr" / f"{name}.nii.gz")
        result = segment(image, model, device="cpu")
        assert result.labels.same_grid_as(image)
        for label, dice in dice_scores(result.labels.array, reference.array, labels=[1, 2]).items():
            scores[label].append(dice)
    measured = {label: float(np.mean(values)) for label, values in scores.items()}
    recorded = {int(k): v for k, v in model.training["val_dice"].items()}
    for label in (1, 2):
        assert measured[label] == pytest.approx(recorded[label], abs=1e-3)
    card = _card_dice(resolve_model(NAME).with_suffix(".md").read_text())
    for label in (1, 2):
        assert measured[label] == pytest.approx(card[label], abs=1e-3)
    assert np.mean(list(measured.values())) >= 0.88


def test_flipped_and_rotated_copy_gives_the_same_physical_labels(model, data_dir):
    """The same voxels stored flipped along x and turned 90 degrees in-plane (geometry changed
    to match) segment to the same physical labels."""
    name = model.training["val_cases"][0]
    image = read_volume(data_dir / "hippocampus" / "imagesTr" / f"{name}.nii.gz")
    g = image.geometry
    stored = np.ascontiguousarray(np.swapaxes(image.array[:, :, ::-1], 1, 2))  # (z, x', y)
    d = g.direction_matrix
    nx = image.shape[2]
    moved = Geometry(
        spacing=(g.spacing[0], g.spacing[2], g.spacing[1]),
        origin=g.index_to_world((0, 0, nx - 1)),
        direction=np.stack([d[:, 0], -d[:, 2], d[:, 1]], axis=1),
    )
    # voxel (k, a, b) of the stored copy is voxel (k, b, nx - 1 - a) of the original, at the same place
    np.testing.assert_allclose(moved.index_to_world((3, 4, 5)), g.index_to_world((3, 5, nx - 1 - 4)), atol=1e-9)
    first = segment(image, model, device="cpu").labels
    second = segment(Volume(stored, moved), model, device="cpu").labels
    back = second.resampled_onto(first).array
    dice = dice_scores(back, first.array, labels=[1, 2])
    assert min(dice.values()) > 0.98, dice
