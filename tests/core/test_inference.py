"""Inference: exact output grid, orientation invariance, errors, progress, cancel, OOM fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model.format import load_model
from medseg_napari.core.model.inference import (
    choose_settings,
    count_windows,
    from_work_grid,
    normalize_intensities,
    run_with_oom_fallback,
    segment,
    to_work_grid,
)
from medseg_napari.core.model.registry import resolve_model
from medseg_napari.core.phantom import make_phantom, oblique_direction
from medseg_napari.core.progress import CancelToken
from medseg_napari.core.volume import Volume


@pytest.fixture(scope="module")
def model():
    return load_model(resolve_model("phantom"))


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(seed=123)


def flipped_rotated_copy(volume: Volume) -> Volume:
    """The same physical volume stored differently: x flipped, then y and x swapped (a 90-degree turn)."""
    g = volume.geometry
    arr = volume.array[:, :, ::-1]
    d = g.direction_matrix.copy()
    last_x = g.index_to_world((0, 0, volume.shape[2] - 1))
    d[:, 2] = -d[:, 2]
    g1 = Geometry(spacing=g.spacing, origin=last_x, direction=d)
    arr = arr.transpose(0, 2, 1)
    d2 = d[:, [0, 2, 1]]
    g2 = Geometry(spacing=(g.spacing[0], g.spacing[2], g.spacing[1]), origin=g1.origin, direction=d2)
    return Volume(np.ascontiguousarray(arr), g2, dict(volume.metadata))


def test_flipped_rotated_copy_is_the_same_physical_volume(phantom):
    copy = flipped_rotated_copy(phantom.labels)
    assert copy.shape != phantom.labels.shape or not copy.geometry.is_close(phantom.labels.geometry)
    back = copy.resampled_onto(phantom.labels)
    np.testing.assert_array_equal(back.array, phantom.labels.array)


def test_oblique_anisotropic_output_on_exact_grid(model, phantom):
    assert phantom.image.spacing == (2.5, 1.0, 1.0)
    assert not np.allclose(phantom.image.geometry.direction_matrix, np.eye(3))
    result = segment(phantom.image, model, device="cpu")
    labels = result.labels
    assert labels.shape == phantom.image.shape
    assert labels.geometry == phantom.image.geometry  # exactly the same numbers
    assert labels.metadata["label_names"] == {1: "ellipsoid", 2: "sphere", 3: "nodule"}
    dice = dice_scores(labels.array, phantom.labels.array, labels=[1, 2, 3])
    assert dice[1] > 0.9 and dice[2] > 0.9, dice
    assert result.device.startswith("CPU") and result.seconds > 0


def test_same_physical_labels_for_a_flipped_rotated_copy(model, phantom):
    original = segment(phantom.image, model, device="cpu").labels
    copy = flipped_rotated_copy(phantom.image)
    result = segment(copy, model, device="cpu").labels
    assert result.shape == copy.shape and result.geometry == copy.geometry
    back = result.resampled_onto(original)
    dice = dice_scores(back.array, original.array, labels=[1, 2, 3])
    assert min(dice.values()) > 0.98, dice


def test_resampled_input_comes_back_on_its_grid(model):
    # Another spacing and tilt than the model's: the resampling path is used both ways.
    ph = make_phantom(shape=(32, 80, 80), spacing=(3.0, 1.2, 1.2), seed=7)
    tilted = Geometry(
        spacing=ph.image.spacing, origin=ph.image.geometry.origin, direction=oblique_direction(20.0, (0.2, 1.0, 0.5))
    )
    image = Volume(ph.image.array, tilted)
    truth = Volume(ph.labels.array, tilted)
    _, grid = to_work_grid(image, spacing=model.spacing, orientation=model.orientation)
    assert grid.resampled
    labels = segment(image, model, device="cpu").labels
    assert labels.shape == image.shape and labels.geometry == image.geometry
    # Another spacing, field of view and tilt than the model was trained on: still a
    # sensible segmentation (the sphere, smaller in voxels here, suffers most).
    dice = dice_scores(labels.array, truth.array, labels=[1, 2])
    assert dice[1] > 0.9 and dice[2] > 0.7, dice


def test_work_grid_round_trip_is_exact_without_resampling(phantom):
    for code in ("RAS", "LPS", "SAL"):
        _, probe = to_work_grid(phantom.labels, spacing=(1, 1, 1), orientation=code, interpolation="nearest")
        spacing = probe.oriented_geometry.spacing  # the input's spacing, permuted to the new axis order
        work, grid = to_work_grid(phantom.labels, spacing=spacing, orientation=code, interpolation="nearest")
        assert not grid.resampled
        assert sorted(work.shape) == sorted(phantom.labels.shape)
        np.testing.assert_array_equal(from_work_grid(work, grid), phantom.labels.array)


def test_work_grid_keeps_the_physical_box():
    v = Volume(np.zeros((10, 20, 30), np.float32), Geometry(spacing=(3.0, 1.0, 0.5), origin=(5, -4, 2)))
    _, grid = to_work_grid(v, spacing=(1.5, 2.0, 1.0), orientation="LPS")
    assert grid.shape == (20, 10, 15)
    corners_in = v.geometry.corners(v.shape)
    corners_out = grid.geometry.corners(grid.shape)
    np.testing.assert_allclose(np.sort(corners_in, axis=0), np.sort(corners_out, axis=0), atol=1e-9)


def test_normalisations_exact():
    a = np.array([0.0, 0.0, 0.0, 2.0, 4.0, 6.0], np.float32)
    out = normalize_intensities(a, {"method": "zscore"})
    fg = np.array([2.0, 4.0, 6.0])
    np.testing.assert_allclose(out, (a - fg.mean()) / fg.std(), rtol=1e-6)
    ct = normalize_intensities(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0]), {"method": "ct_window", "window": [-160, 240]})
    np.testing.assert_allclose(ct, [-1, -1, 0, 1, 1])


def test_two_channels_for_a_one_channel_model(model, phantom):
    with pytest.raises(MedsegError, match=r"takes 1 input channel \(MR\); got 2 images"):
        segment([phantom.image, phantom.image], model, device="cpu")


def test_nan_input_is_a_clear_error(model, phantom):
    arr = phantom.image.array.copy()
    arr[3, 4, 5] = np.nan
    with pytest.raises(MedsegError, match="NaN"):
        segment(phantom.image.with_array(arr), model, device="cpu")


def test_no_gpu_is_a_clear_error(model, phantom):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(MedsegError, match="no CUDA GPU"):
        segment(phantom.image, model, device="cuda")


def test_progress_with_eta_covers_every_window(model, phantom):
    reports = []
    segment(phantom.image, model, device="cpu", overlap=0.5, sw_batch_size=1, progress=reports.append)
    windows = [r for r in reports if r.total]
    expected = count_windows(phantom.image.shape, model.patch_size, 0.5)
    assert windows[-1].done == windows[-1].total == expected
    assert [r.done for r in windows] == list(range(1, expected + 1))
    assert all(r.eta_s is not None for r in windows[1:])
    assert windows[-1].eta_s == pytest.approx(0.0)


def test_cancel_stops_between_windows(model, phantom):
    token = CancelToken()
    seen = []

    def progress(report):
        seen.append(report)
        if report.total and report.done >= 1:
            token.cancel()

    with pytest.raises(Cancelled):
        segment(phantom.image, model, device="cpu", sw_batch_size=1, overlap=0.5, progress=progress, cancel=token)
    assert max(r.done for r in seen if r.total) == 1


def test_out_of_memory_falls_back_to_smaller_batches_then_cpu():
    calls = []

    def run(device, batch):
        calls.append((device.type, batch))
        if device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "ok"

    notes = []
    result, device = run_with_oom_fallback(run, torch.device("cuda"), 4, notify=notes.append)
    assert result == "ok" and device.type == "cpu"
    assert calls == [("cuda", 4), ("cuda", 2), ("cuda", 1), ("cpu", 1)]
    assert notes[0] == "GPU out of memory; retrying with 2 window(s) at a time"
    assert "running on the CPU" in notes[-1]


def test_settings_follow_free_memory():
    kw = {"channels": [32]}
    big = choose_settings(torch.device("cuda"), patch_size=(96, 96, 96), image_shape=(200, 512, 512), n_classes=4,
                          network_kwargs=kw, free_bytes=40 << 30)  # fmt: skip
    small = choose_settings(torch.device("cuda"), patch_size=(96, 96, 96), image_shape=(200, 512, 512), n_classes=4,
                            network_kwargs=kw, free_bytes=3 << 30)  # fmt: skip
    assert big.output_device == "cuda" and small.output_device == "cpu"
    assert big.sw_batch_size > small.sw_batch_size >= 1
    assert big.overlap == 0.5
