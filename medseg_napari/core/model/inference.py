"""Run a segmentation model on a volume and return labels on the volume's exact grid.

The steps (:func:`segment`):

1. check the input: channel count, same grid for every channel, finite values;
2. reorient each channel to the model's orientation (``SimpleITK.DICOMOrient``:
   a pure permutation/flip of the array, no interpolation) and resample it to the
   model's spacing (linear) over the same physical box;
3. normalise the intensities as the model was trained (z-score over the
   foreground, or a CT window);
4. ``monai.inferers.sliding_window_inference`` with Gaussian blending, under
   ``torch.inference_mode`` (CUDA with autocast when available, else the CPU with
   one thread per physical core); the window batch and where the output buffer
   lives are chosen from the device's free memory; every window goes through a
   wrapped predictor that reports progress (with an ETA) and checks the cancel flag;
5. argmax, label values, then back to the input's exact grid: nearest-neighbour
   resampling to the reoriented grid and the inverse ``DICOMOrient``, so the
   result has the input's shape, spacing, origin and direction.

Out of GPU memory, the window batch is halved and retried, and then the CPU is
used; each fallback is reported in the progress message and in
:attr:`SegmentationResult.notes`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import SimpleITK as sitk
import torch

from medseg_napari.core.errors import GeometryMismatchError, MedsegError
from medseg_napari.core.geometry import Geometry, array_to_sitk, resample, sitk_to_array
from medseg_napari.core.model.format import SegmentationModel, load_model
from medseg_napari.core.model.network import describe_device, network_of, resolve_device, set_cpu_threads
from medseg_napari.core.progress import CancelToken, Progress, ProgressCallback, ProgressTimer
from medseg_napari.core.volume import Volume

__all__ = [
    "InferenceSettings",
    "SegmentationResult",
    "WorkGrid",
    "choose_settings",
    "from_work_grid",
    "normalize_intensities",
    "predict_classes",
    "segment",
    "to_work_grid",
]

T = TypeVar("T")


# --- grids ------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkGrid:
    """How an input grid maps to the model's working grid.

    Attributes
    ----------
    input_shape, input_geometry
        The input's exact grid.
    input_orientation : str
        DICOM orientation code of the input (to undo the reorientation).
    oriented_shape, oriented_geometry
        The input after ``DICOMOrient`` (same voxels, permuted/flipped).
    shape, geometry
        The working grid at the model's spacing (same physical box).
    resampled : bool
        Whether the working grid differs from the oriented grid.
    """

    input_shape: tuple[int, int, int]
    input_geometry: Geometry
    input_orientation: str
    oriented_shape: tuple[int, int, int]
    oriented_geometry: Geometry
    shape: tuple[int, int, int]
    geometry: Geometry
    resampled: bool


def _orientation_code(geometry: Geometry) -> str:
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(geometry.itk_direction)


def _reorient(array: np.ndarray, geometry: Geometry, code: str) -> tuple[np.ndarray, Geometry]:
    """Permute/flip ``array`` to the DICOM orientation ``code`` (no interpolation)."""
    if _orientation_code(geometry) == code:
        return array, geometry
    image = sitk.DICOMOrient(array_to_sitk(array, geometry), code)
    return sitk_to_array(image)


def to_work_grid(
    volume: Volume, *, spacing: Sequence[float], orientation: str, interpolation: str = "linear", tol: float = 0.01
) -> tuple[np.ndarray, WorkGrid]:
    """Reorient ``volume`` to ``orientation`` and resample it to ``spacing`` (z, y, x mm).

    The working grid covers the same physical box as the input. Spacings within
    ``tol`` (relative) of the target are kept as they are (no resampling).

    Returns
    -------
    array : ndarray
        The volume on the working grid (float32 for ``linear``, same dtype for ``nearest``).
    grid : WorkGrid
        What :func:`from_work_grid` needs to go back.

    Examples
    --------
    >>> from medseg_napari.core.geometry import Geometry
    >>> v = Volume(np.zeros((4, 6, 8), np.float32), Geometry(spacing=(2, 1, 1)))
    >>> arr, grid = to_work_grid(v, spacing=(1, 1, 1), orientation="LPS")
    >>> arr.shape, grid.resampled
    ((8, 6, 8), True)
    """
    code = orientation.upper()
    try:
        oriented, o_geom = _reorient(volume.array, volume.geometry, code)
    except RuntimeError as error:
        raise MedsegError(f"cannot reorient the image to {orientation!r} ({str(error).strip()[:120]})") from None
    o_shape = tuple(int(s) for s in oriented.shape)
    target = np.asarray(spacing, dtype=float)
    current = np.asarray(o_geom.spacing, dtype=float)
    if np.all(np.abs(current / target - 1) < tol):
        work = oriented if interpolation == "nearest" else oriented.astype(np.float32, copy=False)
        grid = WorkGrid(volume.shape, volume.geometry, _orientation_code(volume.geometry), o_shape, o_geom,
                        o_shape, o_geom, False)  # fmt: skip
        return work, grid
    shape = tuple(max(1, round(n * s / t)) for n, s, t in zip(o_shape, current, target))
    # Same physical box: the outer voxel edges stay where they are.
    new_spacing = current * np.asarray(o_shape) / np.asarray(shape)
    origin = np.asarray(o_geom.origin) + o_geom.direction_matrix @ (0.5 * (new_spacing - current))
    w_geom = Geometry(spacing=tuple(new_spacing), origin=tuple(origin), direction=o_geom.direction)
    work = resample(oriented, o_geom, shape=shape, target=w_geom, interpolation=interpolation)  # type: ignore[arg-type]
    grid = WorkGrid(volume.shape, volume.geometry, _orientation_code(volume.geometry), o_shape, o_geom,
                    shape, w_geom, True)  # fmt: skip
    return work, grid


def from_work_grid(labels: np.ndarray, grid: WorkGrid) -> np.ndarray:
    """Bring a label map on the working grid back to the input's exact grid (nearest neighbour).

    Examples
    --------
    >>> from medseg_napari.core.geometry import Geometry
    >>> v = Volume(np.zeros((4, 6, 8), np.float32), Geometry(spacing=(2, 1, 1)))
    >>> arr, grid = to_work_grid(v, spacing=(1, 1, 1), orientation="RAS")
    >>> from_work_grid(arr.astype(np.uint8), grid).shape
    (4, 6, 8)
    """
    if grid.resampled:
        labels = resample(labels, grid.geometry, shape=grid.oriented_shape, target=grid.oriented_geometry)
    back, _ = _reorient(labels, grid.oriented_geometry, grid.input_orientation)
    if tuple(back.shape) != tuple(grid.input_shape):  # pragma: no cover - DICOMOrient is a permutation
        raise GeometryMismatchError(f"internal error: result shape {back.shape} != input {grid.input_shape}")
    return np.ascontiguousarray(back)


# --- intensities -----------------------------------------------------------------
def normalize_intensities(array: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    """Normalise one channel as the model expects.

    ``{"method": "zscore"}``: subtract the mean and divide by the standard
    deviation of the foreground (voxels above the image minimum; the whole image
    when that is under 10 % of it). ``{"method": "ct_window", "window": [lo, hi]}``:
    clip to the window (HU) and scale it to ``[-1, 1]``.

    Examples
    --------
    >>> a = np.array([0.0, 0.0, 1.0, 3.0])
    >>> normalize_intensities(a, {"method": "zscore"}).tolist()
    [-2.0, -2.0, -1.0, 1.0]
    >>> normalize_intensities(np.array([-2000.0, 40.0]), {"method": "ct_window", "window": [-160, 240]}).tolist()
    [-1.0, 0.0]
    """
    array = np.asarray(array, dtype=np.float32)
    method = normalization.get("method")
    if method == "ct_window":
        lo, hi = (float(v) for v in normalization["window"])
        return ((np.clip(array, lo, hi) - (lo + hi) / 2) / ((hi - lo) / 2)).astype(np.float32)
    if method != "zscore":
        raise MedsegError(f"unknown intensity normalisation {method!r}")
    mask = array > array.min()
    values = array[mask] if mask.sum() >= 0.1 * array.size else array.reshape(-1)
    mean = float(values.mean(dtype=np.float64))
    std = float(values.std(dtype=np.float64))
    return ((array - mean) / max(std, 1e-8)).astype(np.float32)


def check_channels(images: Sequence[Volume], model: SegmentationModel) -> None:
    """Raise a clear :class:`MedsegError` unless ``images`` fit the model's input channels."""
    if len(images) != model.n_channels:
        names = ", ".join(model.channels)
        plural = "s" if model.n_channels != 1 else ""
        raise MedsegError(
            f"the model '{model.name}' takes {model.n_channels} input channel{plural} ({names}); "
            f"got {len(images)} image{'s' if len(images) != 1 else ''}"
        )
    for i, image in enumerate(images):
        if image.array.ndim != 3:
            raise MedsegError(f"channel {i + 1} has shape {image.array.shape}; a 3D volume is needed")
        if i:
            images[0].check_same_grid(image, what=f"channel {i + 1} ({model.channels[i]})", other_name="channel 1")
        if not np.isfinite(image.array).all():
            raise MedsegError(
                f"channel {i + 1} ({model.channels[i]}) contains NaN or infinite values; "
                "fill or mask them before segmenting"
            )


def prepare_channels(images: Sequence[Volume], model: SegmentationModel) -> tuple[np.ndarray, WorkGrid]:
    """The network input ``(C, Z, Y, X)`` float32 on the working grid, and that grid."""
    arrays = []
    grid = None
    for image in images:
        work, grid = to_work_grid(image, spacing=model.spacing, orientation=model.orientation)
        arrays.append(normalize_intensities(work, model.normalization))
    assert grid is not None
    return np.stack(arrays), grid


# --- memory and device settings ---------------------------------------------------
@dataclass(frozen=True)
class InferenceSettings:
    """Sliding-window settings: windows per batch, overlap, and where the output buffer lives."""

    sw_batch_size: int
    overlap: float
    output_device: str


def _free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        return 4 << 30


def choose_settings(
    device: torch.device,
    *,
    patch_size: Sequence[int],
    image_shape: Sequence[int],
    n_classes: int,
    network_kwargs: dict[str, Any],
    free_bytes: int | None = None,
) -> InferenceSettings:
    """Pick the window batch and output device from the free memory of ``device``.

    The activation memory of one window is estimated as ``patch voxels x
    first-level features x 24`` bytes (the U-Net's widest level dominates, with
    its residual units and normalisation buffers); the windows of one batch use
    at most half of what is free after the output buffers
    (``voxels x classes x 8`` bytes: the blended sum and the weights). When the
    output buffers would take more than a third of the GPU's free memory they are
    kept on the CPU. Overlap is 0.5 on a GPU and 0.25 on the CPU (speed).

    Examples
    --------
    >>> s = choose_settings(torch.device("cpu"), patch_size=(32, 64, 64), image_shape=(40, 96, 96),
    ...                     n_classes=4, network_kwargs={"channels": [8]}, free_bytes=8 << 30)
    >>> s.sw_batch_size, s.overlap, s.output_device
    (4, 0.25, 'cpu')
    """
    free = _free_memory(device) if free_bytes is None else int(free_bytes)
    voxels = math.prod(int(s) for s in image_shape)
    out_bytes = voxels * n_classes * 8
    output_device = device.type
    if device.type == "cuda" and out_bytes > free / 3:
        output_device = "cpu"
    available = free - (out_bytes if output_device == device.type else 0)
    width = int((network_kwargs.get("channels") or [32])[0])
    per_window = math.prod(int(p) for p in patch_size) * max(width, 8) * 24
    limit = 8 if device.type == "cuda" else 4
    sw_batch = int(max(1, min(limit, available * 0.5 // max(per_window, 1))))
    overlap = 0.5 if device.type == "cuda" else 0.25
    return InferenceSettings(sw_batch, overlap, output_device)


def count_windows(image_shape: Sequence[int], patch_size: Sequence[int], overlap: float) -> int:
    """Number of sliding windows MONAI visits (same rule as ``sliding_window_inference``).

    Examples
    --------
    >>> count_windows((40, 96, 96), (32, 64, 64), 0.25)
    8
    """
    from monai.data.utils import dense_patch_slices

    size = [max(int(s), int(p)) for s, p in zip(image_shape, patch_size)]
    interval = []
    for s, p in zip(size, patch_size):
        step = int(p) if int(p) == s else int(int(p) * (1 - overlap))
        interval.append(max(step, 1))
    return len(dense_patch_slices(size, [int(p) for p in patch_size], interval))


def run_with_oom_fallback(
    run: Callable[[torch.device, int], T],
    device: torch.device,
    sw_batch_size: int,
    *,
    notify: Callable[[str], None] | None = None,
) -> tuple[T, torch.device]:
    """Call ``run(device, sw_batch_size)``; out of GPU memory, halve the batch, then use the CPU.

    Returns ``(result, device used)``. Each fallback is announced through ``notify``.
    """
    while True:
        try:
            return run(device, sw_batch_size), device
        except torch.OutOfMemoryError:
            if device.type != "cuda":
                raise MedsegError("out of memory on the CPU; close other programs or use a smaller image") from None
            torch.cuda.empty_cache()
            if sw_batch_size > 1:
                sw_batch_size //= 2
                message = f"GPU out of memory; retrying with {sw_batch_size} window(s) at a time"
            else:
                device = torch.device("cpu")
                message = "GPU out of memory even with one window at a time; running on the CPU instead"
            if notify is not None:
                notify(message)


# --- prediction ----------------------------------------------------------------
def predict_classes(
    network: torch.nn.Module,
    array: np.ndarray,
    *,
    patch_size: Sequence[int],
    device: torch.device | str = "cpu",
    sw_batch_size: int = 1,
    overlap: float = 0.25,
    output_device: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    message: str = "segmenting",
) -> np.ndarray:
    """Sliding-window prediction of class indices for one ``(C, Z, Y, X)`` array.

    Gaussian blending of the windows' logits, then argmax. Progress is reported
    after every window batch (with an ETA); ``cancel`` is checked before each.

    Returns
    -------
    ndarray
        ``(Z, Y, X)`` uint8 class indices (int16 for more than 255 classes).
    """
    from monai.inferers import sliding_window_inference

    device = torch.device(device)
    total = count_windows(array.shape[1:], patch_size, overlap)
    timer = ProgressTimer(total, progress)
    done = 0

    def predictor(window: torch.Tensor) -> torch.Tensor:
        nonlocal done
        if cancel is not None:
            cancel.raise_if_cancelled()
        out = network(window)
        done += int(window.shape[0])
        timer.report(min(done, total), message)
        return out.float()

    was_training = network.training
    network.eval()
    network.to(device)
    try:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None].to(device)
            use_amp = device.type == "cuda"
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                logits = sliding_window_inference(
                    x,
                    roi_size=[int(p) for p in patch_size],
                    sw_batch_size=int(sw_batch_size),
                    predictor=predictor,
                    overlap=float(overlap),
                    mode="gaussian",
                    sw_device=device,
                    device=torch.device(output_device or device.type),
                )
            classes = torch.argmax(logits[0], dim=0)
            n = logits.shape[1]
            out = classes.to("cpu").numpy().astype(np.uint8 if n <= 256 else np.int16)
    finally:
        network.train(was_training)
    if cancel is not None:
        cancel.raise_if_cancelled()
    return out


# --- the whole job ---------------------------------------------------------------
@dataclass
class SegmentationResult:
    """What :func:`segment` returns.

    Attributes
    ----------
    labels : Volume
        The label map on the input's exact grid (``metadata["label_names"]`` set).
    label_names : dict of int to str
    model_name : str
    device : str
        The device used, in words (a GPU name or ``"CPU (N cores)"``).
    seconds : float
        Wall-clock time of the whole job.
    notes : list of str
        Fallbacks taken (out of GPU memory ...).
    """

    labels: Volume
    label_names: dict[int, str]
    model_name: str
    device: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def _as_model(model: SegmentationModel | str | Path) -> SegmentationModel:
    if isinstance(model, SegmentationModel):
        return model
    from medseg_napari.core.model.registry import resolve_model

    return load_model(resolve_model(model))


def segment(
    images: Volume | Sequence[Volume],
    model: SegmentationModel | str | Path,
    *,
    device: str | torch.device | None = None,
    overlap: float | None = None,
    sw_batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Segment a volume (or several co-registered volumes as channels) with a model.

    Parameters
    ----------
    images : Volume or sequence of Volume
        One volume per model input channel, in the model's channel order, all on
        the same grid.
    model : SegmentationModel, str or Path
        A loaded model, a shipped model's name (see ``list_models``) or a ``.pt`` path.
    device : {"cpu", "cuda"} or None
        Default: CUDA when available, else the CPU.
    overlap, sw_batch_size : optional
        Override the sliding-window settings chosen from the free memory.
    progress : callable, optional
        Receives :class:`~medseg_napari.core.progress.Progress` reports with an ETA.
    cancel : CancelToken, optional
        Checked before every window; a cancelled job raises
        :class:`~medseg_napari.core.errors.Cancelled` and returns nothing.

    Returns
    -------
    SegmentationResult
        ``labels`` lies on exactly the grid of ``images[0]``.

    Raises
    ------
    MedsegError
        Wrong number of channels, channels on different grids, NaN values, a bad
        model file, or no GPU when ``device="cuda"``.

    Examples
    --------
    >>> from medseg_napari.core.phantom import make_phantom
    >>> ph = make_phantom()
    >>> result = segment(ph.image, "phantom", device="cpu")
    >>> result.labels.same_grid_as(ph.image)
    True
    """
    start = time.perf_counter()
    volumes = [images] if isinstance(images, Volume) else list(images)
    net_model = _as_model(model)
    check_channels(volumes, net_model)
    dev = resolve_device(device)
    notes: list[str] = []

    def say(message: str) -> None:
        notes.append(message)
        if progress is not None:
            progress(Progress(0, 0, message))

    if progress is not None:
        progress(Progress(0, 0, "preparing the image"))
    if cancel is not None:
        cancel.raise_if_cancelled()
    array, grid = prepare_channels(volumes, net_model)
    if cancel is not None:
        cancel.raise_if_cancelled()
    network = network_of(net_model)
    settings = choose_settings(
        dev,
        patch_size=net_model.patch_size,
        image_shape=array.shape[1:],
        n_classes=net_model.n_classes,
        network_kwargs=net_model.network_kwargs,
    )
    use_overlap = settings.overlap if overlap is None else float(overlap)

    def run(run_device: torch.device, batch: int) -> np.ndarray:
        if run_device.type == "cpu":
            set_cpu_threads()
        return predict_classes(
            network,
            array,
            patch_size=net_model.patch_size,
            device=run_device,
            sw_batch_size=batch,
            overlap=use_overlap,
            output_device=settings.output_device if run_device.type == "cuda" else "cpu",
            progress=progress,
            cancel=cancel,
            message=f"segmenting with '{net_model.name}' on {describe_device(run_device)}",
        )

    classes, used = run_with_oom_fallback(run, dev, sw_batch_size or settings.sw_batch_size, notify=say)
    lut = np.array([0, *net_model.label_values], dtype=np.int64)
    dtype = np.uint8 if lut.max() < 256 else np.uint16
    labels = lut[classes].astype(dtype)
    labels = from_work_grid(labels, grid)
    names = {int(k): v for k, v in net_model.labels.items()}
    reference = volumes[0]
    volume = Volume(labels, reference.geometry, {"label_names": names, "model": net_model.name})
    return SegmentationResult(
        labels=volume,
        label_names=names,
        model_name=net_model.name,
        device=describe_device(used),
        seconds=time.perf_counter() - start,
        notes=notes,
    )
