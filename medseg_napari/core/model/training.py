"""Train a 3D U-Net (or another MONAI network) and write a model file.

:func:`train` is the one entry point used by ``medseg train``, by the tests and
by fine-tuning. Cases are preprocessed exactly as inference does
(:func:`~medseg_napari.core.model.inference.to_work_grid`: reorient, resample to
the model spacing, normalise), kept in memory, and sampled with MONAI transforms:
foreground-weighted random crops (``RandCropByPosNegLabeld``), small rotations
and scaling (``RandAffined``), flips and intensity jitter. The loss is Dice + cross
entropy (``DiceCELoss``), the optimiser AdamW with a polynomial learning-rate
decay over the budget (iterations or minutes). Every ``val_every`` iterations the
whole validation volumes are segmented with the inference code
(:func:`~medseg_napari.core.model.inference.predict_classes`) and scored with
:func:`medseg_napari.core.metrics.dice_scores`; the best checkpoint is written
atomically to ``output``. A resumable state (last weights, optimiser, iteration,
history) is written beside it as ``<output stem>.state.pt``.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg_napari.core.atomic import atomic_output
from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model.dataset import Dataset, read_dataset
from medseg_napari.core.model.format import (
    SegmentationModel,
    _versions,
    load_model,
    save_model,
)
from medseg_napari.core.model.inference import _reorient, normalize_intensities, predict_classes, to_work_grid
from medseg_napari.core.model.network import (
    DEFAULT_UNET,
    build_network,
    default_network_kwargs,
    describe_device,
    patch_multiple,
    resolve_device,
    set_cpu_threads,
)
from medseg_napari.core.progress import CancelToken, Progress, ProgressCallback
from medseg_napari.core.volume import Volume

__all__ = ["TrainingResult", "state_path", "train"]

STATE_FORMAT = "medseg-napari-train-state"
PairLike = tuple[Volume | Sequence[Volume], Volume]


@dataclass
class TrainingResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : SegmentationModel
        The best checkpoint (by mean validation Dice; the last one without validation).
    path : Path or None
        Where it was written.
    iterations : int
        Iterations done in total (resumed ones included).
    best_iteration : int
    val_dice : dict of int to float
        Validation Dice per label value of the best checkpoint.
    history : list of dict
        One entry per validation: ``iteration``, ``loss``, ``val_dice`` (mean),
        ``per_label``, ``seconds``.
    seconds : float
        Training time in total (resumed runs included).
    device : str
        The device, in words.
    """

    model: SegmentationModel
    path: Path | None
    iterations: int
    best_iteration: int
    val_dice: dict[int, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = ""

    @property
    def mean_val_dice(self) -> float | None:
        """Mean validation Dice over labels (``None`` without validation)."""
        return float(np.mean(list(self.val_dice.values()))) if self.val_dice else None


def state_path(output: str | os.PathLike) -> Path:
    """The resumable training state written beside a model file (``model.pt`` -> ``model.state.pt``).

    Examples
    --------
    >>> state_path("runs/model.pt").name
    'model.state.pt'
    """
    output = Path(output)
    stem = output.name[: -len(".pt")] if output.name.endswith(".pt") else output.name
    return output.with_name(f"{stem}.state.pt")


# --- data ----------------------------------------------------------------------
@dataclass
class _Prepared:
    name: str
    image: np.ndarray  # (C, Z, Y, X) float32, normalised, on the working grid
    label: np.ndarray  # (1, Z, Y, X) class indices
    indices: list[np.ndarray] | None = None


def _as_pairs(data: Any) -> tuple[list[tuple[str, list[Volume], Volume]], Dataset | None]:
    if isinstance(data, (str, os.PathLike)):
        data = read_dataset(data)
    if isinstance(data, Dataset):
        pairs = []
        for case in data.cases:
            images, label = case.load()
            pairs.append((case.name, images, label))
        return pairs, data
    pairs = []
    for i, item in enumerate(data):
        try:
            images, label = item
        except (TypeError, ValueError):
            raise MedsegError(f"case {i}: expected an (image, label) pair") from None
        images = [images] if isinstance(images, Volume) else list(images)
        for image in images:
            label.check_same_grid(image, what=f"the labels of case {i}", other_name="its image")
        pairs.append((str(images[0].metadata.get("source", f"case {i}")), images, label))
    return pairs, None


def _oriented_spacing(volume: Volume, orientation: str) -> np.ndarray:
    _, geom = _reorient(np.zeros((1, 1, 1), np.uint8), volume.geometry, orientation)
    # The permutation of a 1-voxel grid gives the axis order; apply it to the spacing.
    perm = np.abs(geom.direction_matrix.T @ volume.geometry.direction_matrix).argmax(axis=1)
    return np.asarray(volume.geometry.spacing)[perm]


def _prepare(
    name: str,
    images: list[Volume],
    label: Volume,
    *,
    spacing: Sequence[float],
    orientation: str,
    normalization: dict[str, Any],
    lut: np.ndarray,
    pad_to: Sequence[int] | None,
) -> _Prepared:
    channels = []
    for image in images:
        if not np.isfinite(image.array).all():
            raise MedsegError(f"case {name}: the image contains NaN or infinite values")
        work, _ = to_work_grid(image, spacing=spacing, orientation=orientation)
        channels.append(normalize_intensities(work, normalization))
    work_label, _ = to_work_grid(label, spacing=spacing, orientation=orientation, interpolation="nearest")
    values = np.asarray(work_label).astype(np.int64)
    if values.min() < 0 or values.max() >= len(lut):
        raise MedsegError(f"case {name}: label value {int(values.max())} is not one of the model's labels")
    classes = lut[values]
    if (classes < 0).any():
        bad = sorted(set(np.unique(values[classes < 0]).tolist()))
        raise MedsegError(f"case {name}: label values {bad} are not among the model's labels")
    image = np.stack(channels)
    lab = classes.astype(np.uint8)[None]
    if pad_to is not None:
        pads = [(0, 0)] + [(0, max(0, int(p) - s)) for p, s in zip(pad_to, lab.shape[1:])]
        if any(p[1] for p in pads):
            image = np.pad(image, pads, constant_values=0)
            lab = np.pad(lab, pads, constant_values=0)
    return _Prepared(name, image, lab)


def _class_weights(cases: list[_Prepared], n_classes: int) -> list[float]:
    counts = np.zeros(n_classes)
    for case in cases:
        counts += np.bincount(case.label.ravel(), minlength=n_classes)[:n_classes]
    sizes = counts[1:]
    largest = sizes.max() if sizes.size and sizes.max() > 0 else 1.0
    ratios = np.clip(np.sqrt(largest / np.maximum(sizes, 1.0)), 1.0, 4.0)
    return [1.0, *(round(float(r), 3) for r in ratios)]


def _default_patch(shapes: list[tuple[int, ...]], multiple: int) -> tuple[int, int, int]:
    median = np.median(np.array(shapes), axis=0)
    patch = [int(min(128, max(multiple, math.ceil(m / multiple) * multiple))) for m in median]
    while math.prod(patch) > 96 * 128 * 128:
        i = int(np.argmax(patch))
        patch[i] -= multiple
    return tuple(patch)  # type: ignore[return-value]


def _transforms(patch_size: Sequence[int], n_classes: int, seed: int) -> Any:
    from monai import transforms as mt

    keys = ["image", "label"]
    pipeline = mt.Compose(
        [
            # Class-balanced, foreground-weighted crops: a window centre is drawn
            # from the background or from each label equally often, so small
            # structures are seen in most batches (RandCropByPosNegLabeld would
            # favour the largest label).
            mt.RandCropByLabelClassesd(
                keys=keys,
                label_key="label",
                spatial_size=list(patch_size),
                ratios=[1.0] * n_classes,
                num_classes=n_classes,
                num_samples=1,
                indices_key="indices",
                warn=False,
            ),
            mt.RandAffined(
                keys=keys,
                prob=0.2,
                rotate_range=[0.2, 0.2, 0.2],  # radians, about 11 degrees
                scale_range=[0.1, 0.1, 0.1],
                mode=["bilinear", "nearest"],
                padding_mode="zeros",
            ),
            mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=2),
            mt.RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            mt.RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )
    pipeline.set_random_state(seed=seed)
    return pipeline


# --- checkpoints ---------------------------------------------------------------
def _write_state(path: Path, payload: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable state file is one clear message
        raise MedsegError(f"{path}: cannot read the training state ({str(error).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise MedsegError(f"{path}: is not a medseg-napari training state")
    return state


def _resolve_initial(initial: SegmentationModel | str | os.PathLike | None) -> SegmentationModel | None:
    if initial is None or isinstance(initial, SegmentationModel):
        return initial
    from medseg_napari.core.model.registry import resolve_model

    return load_model(resolve_model(initial))


# --- the training loop ---------------------------------------------------------
def train(
    data: str | os.PathLike | Dataset | Sequence[PairLike],
    *,
    output: str | os.PathLike | None = None,
    labels: Mapping[int, str] | None = None,
    channels: Sequence[str] | None = None,
    initial: SegmentationModel | str | os.PathLike | None = None,
    resume: bool = False,
    iterations: int | None = None,
    minutes: float | None = None,
    val_fraction: float = 0.2,
    validation: Sequence[PairLike] | None = None,
    val_every: int | None = None,
    patch_size: Sequence[int] | None = None,
    batch_size: int = 2,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    network_channels: Sequence[int] | None = None,
    num_res_units: int = 2,
    class_weights: str | Sequence[float] | None = "auto",
    spacing: Sequence[float] | None = None,
    orientation: str = "RAS",
    normalization: str | Mapping[str, Any] = "zscore",
    device: str | torch.device | None = None,
    seed: int = 0,
    threads: int | None = None,
    name: str | None = None,
    command: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TrainingResult:
    """Train a segmentation network; keep and write the best checkpoint.

    Parameters
    ----------
    data : folder, Dataset or sequence of (image, label) pairs
        A Decathlon-layout folder (``imagesTr/``, ``labelsTr/``, optional
        ``dataset.json``), a :class:`~medseg_napari.core.model.dataset.Dataset`,
        or ``(image Volume or list of channel Volumes, label Volume)`` pairs.
    output : path, optional
        Model file to write (the best checkpoint, atomically, each time it
        improves). The resumable state goes to :func:`state_path` ``(output)``.
    labels : mapping, optional
        ``{value: name}``; default ``dataset.json``'s labels, the initial model's,
        or every value found in the label maps.
    channels : sequence of str, optional
        Input channel names (default from ``dataset.json`` or ``["image"]``).
    initial : SegmentationModel, shipped model name or path, optional
        Start from these weights (fine-tuning); its architecture, spacing,
        orientation, normalisation, patch size and channels are reused, and it
        is recorded as the parent. Its labels must match.
    resume : bool
        Continue the run saved beside ``output`` (weights, optimiser, iteration,
        history); ``iterations`` is then the total to reach.
    iterations, minutes : optional
        Budget: a total number of iterations, or minutes of wall-clock time for
        this run (default 1000 iterations). The learning rate decays over it.
    val_fraction : float
        Fraction of the cases held out for validation (fixed ``seed``); ignored
        when ``validation`` is given. 0 trains on every case and keeps the last weights.
    validation : sequence of (image, label) pairs, optional
        Explicit validation cases.
    val_every : int, optional
        Validate every this many iterations (and at the end).
    patch_size : 3 ints, optional
        Training and inference window (z, y, x), a multiple of the network's
        downsampling (default: the median case size, capped).
    batch_size : int
        Patches per iteration.
    learning_rate, weight_decay : float
        AdamW settings; the rate follows ``lr * (1 - progress) ** 0.9``.
    network_channels : sequence of int, optional
        U-Net feature channels per level (default ``(16, 32, 64, 128)``).
    num_res_units : int
        Residual units per U-Net block.
    class_weights : "auto", sequence of float or None
        Loss weight per class (background first). ``"auto"``: ``(largest label
        size / label size) ** 0.5`` clipped to ``[1, 4]``, so small structures
        are not drowned by large ones; ``None``: all 1.
    spacing : 3 floats, optional
        Working spacing (z, y, x, mm; default the median of the cases).
    orientation : str
        DICOM orientation code of the working grid (``"RAS"``, ``"LPS"``...).
    normalization : "zscore", "ct" or dict
        ``"zscore"`` over the foreground, ``"ct"`` for the default CT window
        ``[-1000, 1000]`` HU, or a dict (``{"method": "ct_window", "window": [lo, hi]}``).
    device : {"cpu", "cuda"}, optional
        Default: CUDA when available.
    seed : int
        Seeds the split, the sampling, the augmentation and the weights.
    threads : int, optional
        CPU threads (default: physical cores).
    name : str, optional
        Model name stored in the file (default: ``output``'s stem).
    command : str, optional
        The command line, recorded in the training record.
    progress, cancel : optional
        Progress reports (``loss``, ``val_dice``, ETA) and a cancel flag. On
        cancel, the best checkpoint so far stays in ``output`` and
        :class:`~medseg_napari.core.errors.Cancelled` is raised.

    Returns
    -------
    TrainingResult
    """
    from monai.data import set_track_meta
    from monai.losses import DiceCELoss

    start_time = time.perf_counter()
    if iterations is not None and iterations < 0:
        raise MedsegError("iterations must be positive")
    if minutes is not None and minutes <= 0:
        raise MedsegError("minutes must be positive")
    if not 0 <= val_fraction < 1:
        raise MedsegError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if batch_size < 1:
        raise MedsegError("batch_size must be at least 1")
    output = Path(output) if output is not None else None
    if output is not None and not output.parent.exists():
        raise MedsegError(f"{output}: the folder {output.parent} does not exist")
    dev = resolve_device(device)
    if dev.type == "cpu":
        set_cpu_threads(threads)

    # --- resume / parent ---
    state: dict[str, Any] | None = None
    parent: SegmentationModel | None = None
    if resume:
        if output is None:
            raise MedsegError("resume needs the output model file of the run to continue")
        spath = state_path(output)
        if spath.exists():
            state = _read_state(spath)
            parent = SegmentationModel.from_dict(state["model"], source=str(spath))
        elif output.exists():
            parent = load_model(output)
        else:
            raise MedsegError(f"{output}: nothing to resume (neither the model nor {spath.name} exists)")
    else:
        parent = _resolve_initial(initial)
    fine_tune = parent is not None and state is None and not resume

    if iterations is None and minutes is None:
        iterations = 1000
    start_iteration = 0
    history: list[dict[str, Any]] = []
    seconds_before = 0.0
    if state is not None:
        start_iteration = int(state["iteration"])
        history = list(state.get("history", []))
        seconds_before = float(state.get("seconds", 0.0))
    elif resume and parent is not None:
        start_iteration = int(parent.training.get("iterations", 0))

    # --- configuration ---
    if parent is not None:
        spacing = parent.spacing
        orientation = parent.orientation
        norm = dict(parent.normalization)
        patch_size = parent.patch_size
        channels = parent.channels
        if labels is not None and {int(k) for k in labels} != set(parent.label_values):
            raise MedsegError(
                f"the labels {sorted(int(k) for k in labels)} differ from the initial model's {parent.label_values}"
            )
        labels = parent.labels
    elif isinstance(normalization, str):
        if normalization == "zscore":
            norm = {"method": "zscore"}
        elif normalization == "ct":
            norm = {"method": "ct_window", "window": [-1000.0, 1000.0]}
        else:
            raise MedsegError(f"unknown normalisation {normalization!r} (zscore or ct)")
    else:
        norm = dict(normalization)

    if progress is not None:
        progress(Progress(0, 0, "reading the training cases"))
    pairs, dataset = _as_pairs(data)
    if not pairs:
        raise MedsegError("no training cases")
    val_pairs = _as_pairs(validation)[0] if validation is not None else None
    if labels is None:
        labels = dataset.labels if dataset is not None and dataset.labels else None
    if labels is None:
        found = sorted({int(v) for _, _, lab in pairs for v in np.unique(lab.array)} - {0})
        if not found:
            raise MedsegError("the label maps are empty; nothing to learn")
        labels = {v: f"label {v}" for v in found}
    labels = {int(k): str(v) for k, v in labels.items()}
    n_in = len(pairs[0][1])
    if channels is None:
        channels = dataset.channels if dataset is not None else (["image"] if n_in == 1 else [f"channel {i}" for i in range(n_in)])
    channels = list(channels)
    for case_name, images, _ in pairs + (val_pairs or []):
        if len(images) != len(channels):
            raise MedsegError(f"case {case_name} has {len(images)} channels; expected {len(channels)} ({', '.join(channels)})")
    label_values = sorted(labels)
    lut = np.full(max(label_values) + 1, -1, dtype=np.int64)
    lut[0] = 0
    for i, v in enumerate(label_values):
        lut[v] = i + 1
    n_classes = len(label_values) + 1

    if parent is not None:
        network_class, network_kwargs = parent.network_class, copy.deepcopy(parent.network_kwargs)
        if int(network_kwargs.get("out_channels", n_classes)) != n_classes:
            raise MedsegError("the initial model's number of outputs does not match the labels")
    else:
        network_class = "monai.networks.nets.UNet"
        network_kwargs = default_network_kwargs(
            n_in, n_classes, channels=network_channels or DEFAULT_UNET["channels"], num_res_units=num_res_units
        )
    multiple = patch_multiple(network_kwargs)
    if spacing is None:
        spacing = tuple(float(s) for s in np.median([_oriented_spacing(p[1][0], orientation) for p in pairs], axis=0))
    spacing = tuple(float(s) for s in spacing)
    if patch_size is not None:
        patch_size = tuple(int(p) for p in patch_size)
        if len(patch_size) != 3 or any(p < multiple or p % multiple for p in patch_size):
            raise MedsegError(f"patch size {patch_size} must be 3 multiples of {multiple} (z, y, x)")

    # --- split ---
    rng = np.random.default_rng(seed)
    if val_pairs is not None:
        train_pairs = pairs
    elif val_fraction > 0 and len(pairs) >= 2:
        order = rng.permutation(len(pairs))
        n_val = min(len(pairs) - 1, max(1, round(val_fraction * len(pairs))))
        val_pairs = [pairs[i] for i in sorted(order[:n_val])]
        train_pairs = [pairs[i] for i in sorted(order[n_val:])]
    else:
        train_pairs, val_pairs = pairs, []

    # --- preprocess ---
    prep_kw = {"spacing": spacing, "orientation": orientation, "normalization": norm, "lut": lut}
    if patch_size is None:
        shapes = [to_work_grid(p[2], spacing=spacing, orientation=orientation, interpolation="nearest")[0].shape for p in train_pairs]
        patch_size = _default_patch(shapes, multiple)
    train_cases = []
    for i, (case_name, images, label) in enumerate(train_pairs):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(Progress(i, len(train_pairs), f"preparing case {case_name}"))
        train_cases.append(_prepare(case_name, images, label, pad_to=patch_size, **prep_kw))
    val_cases = [_prepare(n, im, lab, pad_to=None, **prep_kw) for n, im, lab in (val_pairs or [])]
    from monai.transforms.utils import map_classes_to_indices

    for case in train_cases:
        # Computed once per case rather than at every crop.
        case.indices = [np.asarray(i) for i in map_classes_to_indices(case.label, n_classes, None, 0.0, 20000)]

    # --- network and optimiser ---
    torch.manual_seed(seed)
    net = build_network(network_class, network_kwargs)
    if parent is not None:
        net.load_state_dict(parent.state_dict)
    net.to(dev)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    if state is not None and state.get("optimizer"):
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError):
            pass  # a changed optimiser setting: continue with fresh moments
    weights = _class_weights(train_cases, n_classes) if class_weights == "auto" else class_weights
    # Batch Dice (over the whole batch) is stable for structures absent from some patches.
    loss_fn = DiceCELoss(
        to_onehot_y=True,
        softmax=True,
        include_background=False,
        batch=True,
        weight=torch.as_tensor(weights, dtype=torch.float32) if weights is not None else None,
    )
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    pipeline = _transforms(patch_size, n_classes, seed + start_iteration)

    total = iterations if iterations is not None else None
    if total is not None and val_every is None:
        val_every = max(1, min(50, (total - start_iteration) // 4 or 1))
    val_every = val_every or 50
    budget_s = minutes * 60 if minutes is not None else None

    best_score = float(state["best_score"]) if state is not None else -1.0
    best_iteration = int(state.get("best_iteration", 0)) if state is not None else 0
    best_dice: dict[int, float] = {int(k): float(v) for k, v in (state or {}).get("best_val_dice", {}).items()}
    if state is None and resume and parent is not None:
        best_dice = {int(k): float(v) for k, v in parent.training.get("val_dice", {}).items()}
        best_score = float(np.mean(list(best_dice.values()))) if best_dice else -1.0
        best_iteration = start_iteration
    best_weights: dict[str, torch.Tensor] | None = (
        copy.deepcopy(load_model(output).state_dict) if resume and output is not None and output.exists() else None
    )
    device_words = describe_device(dev)
    model_name = name or (output.name[: -len(".pt")] if output is not None and output.name.endswith(".pt") else "model")
    data_desc = str(dataset.root) if dataset is not None else f"{len(pairs)} in-memory cases"

    def make_model(weights: dict[str, torch.Tensor], iteration: int, dice: dict[int, float]) -> SegmentationModel:
        record: dict[str, Any] = {
            "data": data_desc,
            "cases": len(train_cases),
            "val_cases": [c.name for c in val_cases],
            "iterations": int(iteration),
            "total_iterations": int(it),
            "val_dice": {int(k): float(v) for k, v in dice.items()},
            "val_dice_mean": float(np.mean(list(dice.values()))) if dice else None,
            "parent": parent_record,
            "seconds": round(seconds_before + time.perf_counter() - start_time, 1),
            "device": device_words,
            "command": command or "",
            "seed": int(seed),
            "batch_size": int(batch_size),
            "learning_rate": float(learning_rate),
            "patch_size": [int(p) for p in patch_size],  # type: ignore[union-attr]
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return SegmentationModel(
            network_class=network_class,
            network_kwargs=copy.deepcopy(network_kwargs),
            state_dict={k: v.detach().cpu().clone() for k, v in weights.items()},
            labels=dict(labels),
            channels=list(channels),
            spacing=spacing,  # type: ignore[arg-type]
            orientation=orientation,
            normalization=dict(norm),
            patch_size=patch_size,  # type: ignore[arg-type]
            training=record,
            versions=_versions(),
            name=model_name,
        )

    if fine_tune and parent is not None:
        parent_record: Any = {"name": parent.name, "iterations": parent.training.get("iterations"),
                              "data": parent.training.get("data"), "val_dice": parent.training.get("val_dice")}  # fmt: skip
    elif parent is not None:
        parent_record = parent.training.get("parent")
    else:
        parent_record = None

    def validate() -> dict[int, float]:
        scores: dict[int, list[float]] = {v: [] for v in label_values}
        for case in val_cases:
            if cancel is not None:
                cancel.raise_if_cancelled()
            pred = predict_classes(net, case.image, patch_size=patch_size, device=dev, sw_batch_size=2, overlap=0.25, cancel=cancel)
            dice = dice_scores(pred, case.label[0], labels=range(1, n_classes))
            for i, v in enumerate(label_values):
                scores[v].append(dice[i + 1])
        return {v: float(np.mean(s)) for v, s in scores.items()}

    it = start_iteration
    last_loss = float("nan")
    losses: list[float] = []
    loop_start = time.perf_counter()

    def finished() -> bool:
        if total is not None and it >= total:
            return True
        return budget_s is not None and time.perf_counter() - loop_start >= budget_s

    def report(message: str, **values: Any) -> None:
        if progress is None:
            return
        elapsed = time.perf_counter() - loop_start
        if total is not None:
            done_here = it - start_iteration
            eta = elapsed / done_here * (total - it) if done_here else None
            progress(Progress(it, total, message, eta, values))
        else:
            assert budget_s is not None
            progress(Progress(int(elapsed), int(budget_s), message, max(0.0, budget_s - elapsed), values))

    def save_state() -> None:
        if output is None:
            return
        payload = {
            "format": STATE_FORMAT,
            "version": 1,
            "model": make_model(net.state_dict(), it, best_dice).to_dict(),
            "optimizer": optimizer.state_dict(),
            "iteration": int(it),
            "best_score": float(best_score),
            "best_iteration": int(best_iteration),
            "best_val_dice": {int(k): float(v) for k, v in best_dice.items()},
            "history": history,
            "seconds": float(seconds_before + time.perf_counter() - start_time),
        }
        _write_state(state_path(output), payload)

    previous_track = None
    try:
        from monai.data.meta_obj import get_track_meta

        previous_track = get_track_meta()
        set_track_meta(False)
        if finished() and progress is not None:
            progress(Progress(it, total or 0, f"already trained for {it} iterations; nothing to do"))
        while not finished():
            if cancel is not None and cancel.cancelled:
                save_state()
                raise Cancelled(f"training cancelled at iteration {it}; the best checkpoint is kept")
            net.train()
            fraction = max(
                (it / total) if total else 0.0,
                ((time.perf_counter() - loop_start) / budget_s) if budget_s else 0.0,
            )
            for group in optimizer.param_groups:
                group["lr"] = learning_rate * (1 - min(fraction, 0.999)) ** 0.9
            picks = rng.integers(0, len(train_cases), batch_size)
            images, targets = [], []
            for k in picks:
                case = train_cases[int(k)]
                sample = pipeline({"image": case.image, "label": case.label, "indices": case.indices})
                sample = sample[0] if isinstance(sample, list) else sample
                images.append(torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32))
                targets.append(torch.as_tensor(np.asarray(sample["label"])).round().long())
            x = torch.stack(images).to(dev)
            y = torch.stack(targets).to(dev)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(net(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            it += 1
            last_loss = float(loss.detach().cpu())
            losses.append(last_loss)
            if not math.isfinite(last_loss):
                raise MedsegError(f"the loss became {last_loss} at iteration {it}; lower the learning rate")
            report(f"iteration {it}", loss=last_loss)
            if it % val_every == 0 or finished():
                mean_loss = float(np.mean(losses[-val_every:]))
                if val_cases:
                    dice = validate()
                    score = float(np.mean(list(dice.values())))
                else:
                    dice, score = {}, float(it)  # no validation: the last weights are the best
                history.append({"iteration": it, "loss": mean_loss, "val_dice": score if val_cases else None,
                                "per_label": dice, "seconds": round(time.perf_counter() - loop_start, 2)})  # fmt: skip
                if score > best_score:
                    best_score, best_iteration, best_dice = score, it, dict(dice)
                    best_weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                    if output is not None:
                        save_model(make_model(best_weights, it, best_dice), output)
                save_state()
                values: dict[str, Any] = {"loss": mean_loss}
                if val_cases:
                    values["val_dice"] = score
                    values["best"] = best_score
                report(f"iteration {it} validation", **values)
    finally:
        if previous_track is not None:
            set_track_meta(previous_track)
    if best_weights is None:
        best_weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        if output is not None:
            save_model(make_model(best_weights, it, best_dice), output)
    model = make_model(best_weights, best_iteration or it, best_dice)
    if output is not None and output.exists():
        model = load_model(output)
    return TrainingResult(
        model=model,
        path=output,
        iterations=it,
        best_iteration=best_iteration or it,
        val_dice=best_dice,
        history=history,
        seconds=seconds_before + time.perf_counter() - start_time,
        device=device_words,
    )

