"""Training: a real learning test, datasets, resume, cancel, fine-tuning records."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model.dataset import read_dataset, write_case
from medseg_napari.core.model.format import load_model
from medseg_napari.core.model.inference import segment
from medseg_napari.core.model.training import state_path, train
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.progress import CancelToken

TINY = {"network_channels": (4, 8, 16), "num_res_units": 1, "patch_size": (16, 32, 32), "orientation": "LPS"}


def _pairs(seeds, shape=(20, 40, 40)):
    return [(p.image, p.labels) for p in (make_phantom(shape=shape, seed=s) for s in seeds)]


@pytest.mark.timeout(900)  # ~1 minute on 2 idle cores; generous for a loaded machine
def test_learns_the_phantom_and_generalises():
    """A small U-Net trained for ~300 iterations segments an unseen phantom with Dice > 0.9."""
    train_pairs = [(p.image, p.labels) for p in (make_phantom(seed=s) for s in range(1, 5))]
    val = make_phantom(seed=5)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = train(
        train_pairs,
        validation=[(val.image, val.labels)],
        iterations=300,
        val_every=100,
        patch_size=(32, 48, 48),
        batch_size=2,
        learning_rate=5e-3,
        network_channels=(8, 16, 32, 64),
        num_res_units=1,
        orientation="LPS",
        device="cpu",
        seed=0,
    )
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    unseen = make_phantom(seed=99)  # never seen, oblique, its own bias field and noise
    labels = segment(unseen.image, result.model, device="cpu").labels
    dice = dice_scores(labels.array, unseen.labels.array, labels=[1, 2, 3])
    print(f"trained 300 iterations in {wall:.0f} s wall, {cpu:.0f} s CPU; unseen Dice {dice}")
    assert dice[1] > 0.9 and dice[2] > 0.9, dice
    assert np.mean(list(dice.values())) > 0.85, dice
    assert result.iterations == 300 and len(result.history) == 3
    assert result.model.training["val_dice"] == result.val_dice


def test_dataset_folder_layout(tmp_path):
    root = tmp_path / "Task01"
    for i, (image, label) in enumerate(_pairs([1, 2], shape=(8, 16, 16))):
        write_case(root, f"case_{i}", [image, image], label)
    (root / "imagesTr" / "._case_0_0000.nii.gz").write_bytes(b"\x00mac resource fork")
    (root / "labelsTr" / "._case_0.nii.gz").write_bytes(b"\x00")
    (root / "dataset.json").write_text(
        json.dumps({"name": "T", "labels": {"0": "background", "1": "a", "2": "b", "3": "c"},
                    "modality": {"0": "T1", "1": "T2"}})
    )
    ds = read_dataset(root)
    assert [c.name for c in ds.cases] == ["case_0", "case_1"]
    assert [p.name for p in ds.cases[0].images] == ["case_0_0000.nii.gz", "case_0_0001.nii.gz"]
    assert ds.labels == {1: "a", 2: "b", 3: "c"} and ds.channels == ["T1", "T2"]
    images, label = ds.cases[1].load()
    assert len(images) == 2 and label.same_grid_as(images[0])


def test_dataset_without_json_and_errors(tmp_path):
    (image, label), = _pairs([3], shape=(8, 16, 16))
    write_case(tmp_path / "d", "only", [image], label)
    ds = read_dataset(tmp_path / "d")
    assert ds.labels == {} and ds.channels == ["image"] and len(ds.cases) == 1
    (tmp_path / "d" / "labelsTr" / "only.nii.gz").unlink()
    with pytest.raises(MedsegError, match="case only has no label file"):
        read_dataset(tmp_path / "d")
    with pytest.raises(MedsegError, match="needs imagesTr/ and labelsTr/"):
        read_dataset(tmp_path)


def test_resume_continues_and_cancel_keeps_the_best(tmp_path):
    pairs = _pairs([1, 2, 3])
    out = tmp_path / "m.pt"
    first = train(pairs, output=out, iterations=4, val_every=2, val_fraction=0.34, device="cpu", **TINY)
    assert out.exists() and state_path(out).exists()
    assert first.iterations == 4 and [h["iteration"] for h in first.history] == [2, 4]
    state = torch.load(state_path(out), weights_only=True)
    assert state["iteration"] == 4

    second = train(pairs, output=out, iterations=8, val_every=2, val_fraction=0.34, device="cpu", resume=True, **TINY)
    assert second.iterations == 8
    assert [h["iteration"] for h in second.history] == [2, 4, 6, 8]  # history carried over
    assert torch.load(state_path(out), weights_only=True)["iteration"] == 8
    best = load_model(out)
    assert best.training["iterations"] == second.best_iteration

    # Cancel after iteration 9: Cancelled, and the model file still holds the best checkpoint.
    token = CancelToken()
    before = out.read_bytes()

    def progress(report):
        if report.done >= 9:
            token.cancel()

    with pytest.raises(Cancelled):
        train(pairs, output=out, iterations=20, val_every=5, val_fraction=0.34, device="cpu", resume=True,
              progress=progress, cancel=token, **TINY)  # fmt: skip
    assert load_model(out).training["iterations"] >= best.training["iterations"]
    assert torch.load(state_path(out), weights_only=True)["iteration"] in (9, 10)
    assert out.read_bytes() == before or load_model(out).training["val_dice_mean"] >= best.training["val_dice_mean"]


def test_fine_tune_records_the_parent(tmp_path):
    pairs = _pairs([1, 2])
    parent = train(pairs, output=tmp_path / "parent.pt", iterations=2, val_fraction=0, device="cpu", **TINY).model
    child = train(pairs[:1], initial=tmp_path / "parent.pt", iterations=2, val_fraction=0, device="cpu")
    assert child.model.training["parent"]["name"] == "parent"
    assert child.model.patch_size == parent.patch_size and child.model.spacing == parent.spacing
    with pytest.raises(MedsegError, match="differ from the initial model"):
        train(pairs, initial=parent, labels={1: "x"}, iterations=1, device="cpu")


def test_bad_inputs():
    pairs = _pairs([1])
    with pytest.raises(MedsegError, match="patch size"):
        train(pairs, iterations=1, patch_size=(10, 32, 32), network_channels=(4, 8, 16), device="cpu")
    with pytest.raises(MedsegError, match="nothing to resume"):
        train(pairs, output="/tmp/does-not-exist-medseg.pt", resume=True, iterations=1)
    empty = [(pairs[0][0], pairs[0][1].with_array(np.zeros_like(pairs[0][1].array)))]
    with pytest.raises(MedsegError, match="empty"):
        train(empty, iterations=1, device="cpu")
