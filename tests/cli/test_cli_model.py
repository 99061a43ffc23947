"""``medseg segment``, ``medseg models``, ``medseg train``, ``medseg make-phantom-dataset``."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from medseg_napari.cli import main
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model.format import load_model
from medseg_napari.core.model.training import state_path
from medseg_napari.core.phantom import make_phantom

TINY = ["--patch-size", "16", "32", "32", "--channels", "4", "8", "16", "--res-units", "1", "--device", "cpu"]


def test_train_segment_resume(tmp_path, capsys):
    data = tmp_path / "ds"
    assert main(["make-phantom-dataset", str(data), "--cases", "3", "--shape", "16", "32", "32"]) == 0
    assert sorted(p.name for p in (data / "imagesTr").iterdir()) == [f"phantom_00{i}.nii.gz" for i in range(3)]
    model = tmp_path / "m.pt"
    assert main(["train", str(data), "-o", str(model), "--iterations", "3", "--val-every", "3", *TINY]) == 0
    err = capsys.readouterr().err
    assert "[3/3] iteration 3 validation" in err and "val_dice" in err and "loss" in err
    trained = load_model(model)
    assert trained.training["iterations"] == 3
    assert trained.training["command"].startswith(f"medseg train {data} -o {model} --iterations 3")
    assert trained.labels == {1: "ellipsoid", 2: "sphere", 3: "nodule"} and trained.channels == ["MR"]

    image = data / "imagesTr" / "phantom_000.nii.gz"
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(image), "-o", str(out), "--model", str(model), "--device", "cpu"]) == 0
    seg, ref = read_volume(out), read_volume(image)
    assert seg.shape == ref.shape and seg.geometry.is_close(ref.geometry, atol=1e-6)

    # --resume continues from iteration 3 to 5, keeping the history.
    assert main(["train", str(data), "-o", str(model), "--iterations", "5", "--val-every", "1", "--resume", *TINY]) == 0
    err = capsys.readouterr().err
    assert "[4/5]" in err and "[5/5]" in err and "[1/5]" not in err
    assert torch.load(state_path(model), weights_only=True)["iteration"] == 5
    # Without --resume an existing model is not overwritten.
    assert main(["train", str(data), "-o", str(model), "--iterations", "1", *TINY]) == 2
    assert "use --resume" in capsys.readouterr().err


def test_segment_with_shipped_model_and_batch(tmp_path, capsys):
    ph = make_phantom(seed=42)
    folder = tmp_path / "in"
    folder.mkdir()
    write_volume(ph.image, folder / "a.nii.gz")
    write_volume(ph.image, folder / "b.nrrd")
    (folder / "._a.nii.gz").write_bytes(b"junk")
    out = tmp_path / "out"
    assert main(["segment", str(folder), "-o", str(out), "--model", "phantom", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nrrd"]
    seg = read_volume(out / "a.nii.gz")
    assert seg.shape == ph.image.shape and seg.geometry.is_close(ph.image.geometry, atol=1e-5)
    dice = dice_scores(seg.array, ph.labels.array, labels=[1, 2])
    assert min(dice.values()) > 0.9
    assert "2 of 2 cases segmented" in capsys.readouterr().out


def test_models_lists_phantom(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "\nphantom  (" in "\n" + out and "1 ellipsoid, 2 sphere, 3 nodule" in out and "validation Dice" in out


def test_clear_errors_exit_2_and_write_nothing(tmp_path, capsys):
    ph = make_phantom(shape=(16, 32, 32), seed=1)
    image = tmp_path / "img.nii.gz"
    write_volume(ph.image, image)
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((32, 32), np.float32)), str(flat))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a model")
    out = tmp_path / "out.nii.gz"
    cases = [
        (["segment", str(image), str(image), "-o", str(out), "--model", "phantom"], "takes 1 input channel"),
        (["segment", str(flat), "-o", str(out), "--model", "phantom"], "2D image"),
        (["segment", str(image), "-o", str(out), "--model", str(corrupt)], "corrupt"),
        (["segment", str(image), "-o", str(out), "--model", "no-such-model"], "unknown model"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
