"""Fine-tuning: real learning under a domain shift, parent never touched, clear errors, cancel."""

from __future__ import annotations

import errno
import hashlib
import time

import numpy as np
import pytest

from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model import finetune as ft
from medseg_napari.core.model import training
from medseg_napari.core.model.dataset import write_case
from medseg_napari.core.model.format import ModelFormatError, load_model
from medseg_napari.core.model.inference import segment
from medseg_napari.core.model.registry import list_models, resolve_model
from medseg_napari.core.model.training import state_path, train
from medseg_napari.core.phantom import PHANTOM_LABELS, make_phantom
from medseg_napari.core.progress import CancelToken
from medseg_napari.core.workspace import Workspace

# The phantom model's contrast swapped: the ellipsoid dark, the sphere bright. It finds
# neither (Dice 0) before fine-tuning; the nodule, still the brightest, is mostly found.
SWAPPED = {"ellipsoid": 150, "sphere": 700}
TINY = {"network_channels": (4, 8, 16), "num_res_units": 1, "patch_size": (16, 32, 32), "orientation": "LPS"}


def _digest(folder_or_file):
    """SHA-256 of a file, or of every file under a folder (names and bytes)."""
    h = hashlib.sha256()
    paths = [folder_or_file] if folder_or_file.is_file() else sorted(p for p in folder_or_file.rglob("*") if p.is_file())
    for p in paths:
        h.update(str(p.relative_to(folder_or_file.parent)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny_parent(tmp_path_factory):
    """A tiny model trained for 2 iterations on small phantoms (fast to fine-tune)."""
    folder = tmp_path_factory.mktemp("parent")
    pairs = [(p.image, p.labels) for p in (make_phantom(shape=(16, 32, 32), seed=s) for s in (1, 2))]
    train(pairs, output=folder / "parent.pt", iterations=2, val_fraction=0, device="cpu", labels=PHANTOM_LABELS,
          **TINY)  # fmt: skip
    state_path(folder / "parent.pt").unlink()
    return folder / "parent.pt"


def _tiny_workspace(root, seeds=(11, 12, 13), *, status="corrected", intensities=None):
    ws = Workspace.create(root, label_names=PHANTOM_LABELS, channel_names=("MR",))
    for s in seeds:
        ph = make_phantom(shape=(16, 32, 32), seed=s, intensities=intensities)
        ws.add_case(f"case_{s}", ph.image, ph.labels, status=status)
    return ws


def test_finetune_fixes_a_contrast_shift(tmp_path):
    """Acceptance: 3 corrected swapped-contrast phantoms, 12 iterations on the CPU -> Dice on unseen ones up >= 0.1."""
    ws = Workspace.create(tmp_path / "ws", label_names=PHANTOM_LABELS, channel_names=("MR",))
    for s in (10, 11, 12, 13):
        ph = make_phantom(seed=s, intensities=SWAPPED)
        ws.add_case(f"shifted_{s}", ph.image, ph.labels)
    parent_path = resolve_model("phantom")
    parent_digest = _digest(parent_path)
    reports = []
    wall = time.perf_counter()
    result = ft.finetune("phantom", tmp_path / "ws", output=tmp_path / "phantom-ft.pt", iterations=12, val_every=12,
                         device="cpu", progress=reports.append)  # fmt: skip
    wall = time.perf_counter() - wall
    assert _digest(parent_path) == parent_digest

    # Unseen shifted phantoms, scored independently of finetune's own scoring.
    unseen = [make_phantom(seed=s, intensities=SWAPPED) for s in (300, 301)]
    parent, child = load_model(parent_path), load_model(tmp_path / "phantom-ft.pt")

    def mean_dice(model):
        return np.mean([list(dice_scores(segment(p.image, model, device="cpu").labels.array, p.labels.array,
                                         labels=[1, 2, 3]).values()) for p in unseen])  # fmt: skip

    before, after = mean_dice(parent), mean_dice(child)
    print(f"unseen shifted phantoms: mean Dice {before:.3f} -> {after:.3f}; fine-tuning took {wall:.0f} s wall")
    assert after - before >= 0.1
    assert result.mean_after - result.mean_before >= 0.1  # on the held-back workspace case too
    print(result.format_table())
    assert result.before[2] < 0.05 and result.after[2] > 0.5  # the sphere: missed before, found after
    # 12 iterations: about 25 s on 2 idle cores; a generous guard for a loaded machine.
    assert wall < 180

    # Split: one case held back (fixed seed), three trained on.
    assert len(result.val_cases) == 1 and len(result.train_cases) == 3
    assert set(result.val_cases).isdisjoint(result.train_cases)
    # The record names the parent, the data and the scores.
    record = child.training
    assert record["parent"]["name"] == "phantom"
    assert record["parent"]["sha256"] == hashlib.sha256(parent_path.read_bytes()).hexdigest()
    assert record["finetune"]["data"] == str(tmp_path / "ws")
    assert record["finetune"]["before"] == pytest.approx(result.before)
    assert record["finetune"]["after"] == pytest.approx(result.after)
    assert record["finetune"]["val_cases"] == result.val_cases
    assert child.patch_size == parent.patch_size and child.spacing == parent.spacing
    # The card beside it; the state file is gone; the model resolves and lists like a shipped one.
    card = (tmp_path / "phantom-ft.md").read_text()
    assert "**Parent**: `phantom`" in card and "| mean |" in card and f"{result.mean_after:.3f}" in card
    assert not state_path(tmp_path / "phantom-ft.pt").exists()
    assert resolve_model(tmp_path / "phantom-ft.pt") == tmp_path / "phantom-ft.pt"
    (info,) = list_models(tmp_path)
    assert info.name == "phantom-ft" and info.summary.startswith("Fine-tuned from `phantom`")
    # Progress: iteration numbers, losses, and validation Dice starting with the parent's at iteration 0.
    vals = [r.values for r in reports if "val_dice" in r.values]
    assert vals[0]["iteration"] == 0 and vals[0]["val_dice"] == pytest.approx(result.mean_before)
    assert [v["iteration"] for v in vals[1:]] == [12]
    assert sum("loss" in r.values and "val_dice" not in r.values for r in reports) == 12
    assert "before" in result.format_table() and "mean" in result.format_table()


def test_output_equal_to_parent_is_refused(tmp_path, tiny_parent):
    digest = _digest(tiny_parent)
    _tiny_workspace(tmp_path / "ws")
    with pytest.raises(MedsegError, match="would overwrite the starting model"):
        ft.finetune(tiny_parent, tmp_path / "ws", output=tiny_parent, iterations=1)
    # Also through another spelling of the same path.
    other = tiny_parent.parent / "." / tiny_parent.name
    with pytest.raises(MedsegError, match="would overwrite"):
        ft.finetune(str(other), tmp_path / "ws", output=other, iterations=1, overwrite=True)
    assert _digest(tiny_parent) == digest


def test_no_ready_cases(tmp_path, tiny_parent):
    _tiny_workspace(tmp_path / "ws", seeds=(11, 12), status="predicted")
    before = _digest(tmp_path / "ws")
    with pytest.raises(MedsegError, match=r"no corrected or reviewed case to train on \(2 cases: predicted 2"):
        ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "new.pt", iterations=1)
    assert _digest(tmp_path / "ws") == before and not (tmp_path / "new.pt").exists()


def test_label_set_mismatch(tmp_path, tiny_parent):
    digest = _digest(tiny_parent)
    # A workspace naming a label the model lacks.
    ws = Workspace.create(tmp_path / "ws", label_names={**PHANTOM_LABELS, 4: "tumour"})
    ph = make_phantom(shape=(16, 32, 32), seed=3)
    ws.add_case("a", ph.image, ph.labels.with_array(np.where(ph.labels.array == 3, 4, ph.labels.array)))
    with pytest.raises(MedsegError, match=r"workspace labels 4 tumour are not among the model 'parent' labels"):
        ft.finetune(tiny_parent, ws, output=tmp_path / "new.pt", iterations=1)
    # A plain Decathlon folder (no label names) whose label map holds a value the model lacks.
    write_case(tmp_path / "plain", "b", [ph.image], ph.labels.with_array(np.where(ph.labels.array == 2, 7, ph.labels.array)))
    with pytest.raises(MedsegError, match=r"case 'b': label values \[7\] are not among the model 'parent' labels"):
        ft.finetune(tiny_parent, tmp_path / "plain", output=tmp_path / "new.pt", iterations=1)
    assert not (tmp_path / "new.pt").exists() and _digest(tiny_parent) == digest


def test_unwritable_folder_and_full_disk(tmp_path, tiny_parent, monkeypatch):
    digest = _digest(tiny_parent)
    _tiny_workspace(tmp_path / "ws", seeds=(11, 12))
    ws_digest = _digest(tmp_path / "ws")
    (tmp_path / "out").mkdir()

    def no_space(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    with monkeypatch.context() as m:  # an unwritable folder (a chmod would not stop root)
        m.setattr(ft.tempfile, "mkstemp", no_space)
        with pytest.raises(MedsegError, match=r"out: cannot write the new model there \(Permission denied\)"):
            ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "out" / "new.pt", iterations=1)
    with monkeypatch.context() as m:  # a full disk
        m.setattr(ft.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
        with pytest.raises(MedsegError, match=r"not enough free disk space for the new model \(0.0 MB free"):
            ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "out" / "new.pt", iterations=1)
    with pytest.raises(MedsegError, match=r"the folder .*missing does not exist"):
        ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "missing" / "new.pt", iterations=1)

    # The disk filling up during training: a clear error, nothing half-written, parent intact.
    def disk_full(model, path, **kwargs):
        raise ModelFormatError(f"{path}: cannot write the model (No space left on device)")

    with monkeypatch.context() as m:
        m.setattr(training, "save_model", disk_full)
        with pytest.raises(MedsegError, match="No space left on device"):
            ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "out" / "new.pt", iterations=2, val_every=1)
    assert not (tmp_path / "out" / "new.pt").exists() and not (tmp_path / "out" / "new.md").exists()
    assert _digest(tiny_parent) == digest and _digest(tmp_path / "ws") == ws_digest


def test_existing_output_needs_overwrite(tmp_path, tiny_parent):
    _tiny_workspace(tmp_path / "ws", seeds=(11, 12))
    (tmp_path / "new.pt").write_bytes(b"keep me")
    with pytest.raises(MedsegError, match="exists already"):
        ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "new.pt", iterations=1)
    assert (tmp_path / "new.pt").read_bytes() == b"keep me"


def test_cancel_keeps_parent_and_best_checkpoint(tmp_path, tiny_parent):
    digest = _digest(tiny_parent)
    _tiny_workspace(tmp_path / "ws", seeds=(11, 12, 13))
    token = CancelToken()
    seen = []

    def progress(report):
        if "val_dice" in report.values:
            seen.append(report.values["iteration"])
            if report.values["iteration"] >= 2:
                token.cancel()  # after the first checkpoint of the fine-tuned model

    out = tmp_path / "new.pt"
    with pytest.raises(Cancelled, match=r"best checkpoint so far is in .*new.pt .the parent is untouched"):
        ft.finetune(tiny_parent, tmp_path / "ws", output=out, iterations=50, val_every=2, device="cpu",
                    progress=progress, cancel=token)  # fmt: skip
    assert seen == [0, 2]
    assert _digest(tiny_parent) == digest
    model = load_model(out)  # loadable, with its parent recorded
    assert model.training["iterations"] == 2 and model.training["parent"]["name"] == "parent"
    assert "Cancelled" in (tmp_path / "new.md").read_text()
    # The fine-tuned model runs.
    ph = make_phantom(shape=(16, 32, 32), seed=5)
    assert segment(ph.image, model, device="cpu").labels.same_grid_as(ph.image)


def test_explicit_validation_and_single_case(tmp_path, tiny_parent):
    _tiny_workspace(tmp_path / "ws", seeds=(11,))
    val = make_phantom(shape=(16, 32, 32), seed=40)
    result = ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "a.pt", iterations=2,
                         validation=[(val.image, val.labels)], device="cpu")  # fmt: skip
    assert result.train_cases == ["case_11"] and len(result.val_cases) == 1
    # Before is exactly the parent's Dice on that case, computed independently.
    expected = dice_scores(segment(val.image, load_model(tiny_parent), device="cpu").labels.array, val.labels.array,
                           labels=[1, 2, 3])  # fmt: skip
    assert result.before == pytest.approx(expected)
    # A single ready case and no validation: trained on it, nothing to score (said so).
    result = ft.finetune(tiny_parent, tmp_path / "ws", output=tmp_path / "b.pt", iterations=2, device="cpu")
    assert result.val_cases == [] and result.before == {} and result.mean_after is None
    assert any("no before/after score" in n for n in result.notes)
    assert "n/a" in (tmp_path / "b.md").read_text()
