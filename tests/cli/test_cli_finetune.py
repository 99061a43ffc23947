"""``medseg finetune``: before/after table, refuses to overwrite the parent, one-line errors."""

from __future__ import annotations

import hashlib

import pytest

from medseg_napari.cli import main
from medseg_napari.core.model.format import load_model
from medseg_napari.core.model.training import state_path, train
from medseg_napari.core.phantom import PHANTOM_LABELS, make_phantom
from medseg_napari.core.workspace import Workspace

TINY = {"network_channels": (4, 8, 16), "num_res_units": 1, "patch_size": (16, 32, 32), "orientation": "LPS"}


@pytest.fixture
def setup(tmp_path):
    pairs = [(p.image, p.labels) for p in (make_phantom(shape=(16, 32, 32), seed=s) for s in (1, 2))]
    parent = tmp_path / "parent.pt"
    train(pairs, output=parent, iterations=1, val_fraction=0, device="cpu", labels=PHANTOM_LABELS, **TINY)
    state_path(parent).unlink()
    ws = Workspace.create(tmp_path / "ws", label_names=PHANTOM_LABELS)
    for s in (7, 8, 9):
        ph = make_phantom(shape=(16, 32, 32), seed=s)
        ws.add_case(f"c{s}", ph.image, ph.labels)
    return parent, tmp_path / "ws"


def test_finetune_prints_before_after(setup, tmp_path, capsys):
    parent, ws = setup
    digest = hashlib.sha256(parent.read_bytes()).hexdigest()
    rc = main(["finetune", "--model", str(parent), "--data", str(ws), "-o", str(tmp_path / "new.pt"),
               "--iterations", "2", "--device", "cpu"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "fine-tuned from 'parent' on 2 case(s), 2 iterations" in out
    assert "label        before   after   change" in out and "\nmean  " in out
    assert "[1/2] iteration 1" in err  # progress lines
    model = load_model(tmp_path / "new.pt")
    assert model.training["parent"]["name"] == "parent"
    assert model.training["command"].startswith("medseg finetune --model")
    for dice in model.training["finetune"]["after"].values():
        assert f"{dice:6.3f}" in out
    assert (tmp_path / "new.md").exists()
    assert hashlib.sha256(parent.read_bytes()).hexdigest() == digest
    # An existing output is refused without --force.
    assert main(["finetune", "--model", str(parent), "--data", str(ws), "-o", str(tmp_path / "new.pt"),
                 "--iterations", "1"]) == 2  # fmt: skip
    assert "exists already" in capsys.readouterr().err


def test_finetune_errors(setup, tmp_path, capsys):
    parent, ws = setup
    digest = hashlib.sha256(parent.read_bytes()).hexdigest()
    assert main(["finetune", "--model", str(parent), "--data", str(ws), "-o", str(parent), "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medseg finetune: error: ") and "would overwrite the starting model parent.pt" in err
    assert err.count("\n") == 1
    empty = Workspace.create(tmp_path / "empty", label_names=PHANTOM_LABELS)
    assert main(["finetune", "--model", str(parent), "--data", str(empty.root), "-o", str(tmp_path / "n.pt")]) == 2
    assert "no corrected or reviewed case to train on" in capsys.readouterr().err
    assert main(["finetune", "--model", "nosuchmodel", "--data", str(ws), "-o", str(tmp_path / "n.pt")]) == 2
    assert "unknown model 'nosuchmodel'" in capsys.readouterr().err
    assert not (tmp_path / "n.pt").exists()
    assert hashlib.sha256(parent.read_bytes()).hexdigest() == digest
