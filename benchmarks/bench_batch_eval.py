"""Batch evaluation of many cases: 1 worker process vs 2 (``medseg evaluate PRED_DIR REF_DIR``).

50 phantom cases (references = the phantom's exact labels; predictions = the
labels perturbed: shifted, eroded or dilated, with a missed structure now and
then) are written to a temporary folder, then evaluated with
:func:`medseg_napari.core.metrics.batch.evaluate_pairs` (what the CLI and the
navigator call) with 1 and with 2 workers. Prints both times, the ratio, and
whether the two CSVs are byte-identical.

    .venv/bin/python benchmarks/bench_batch_eval.py [--cases 50] [--shape 64,160,160]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg_napari.core.io import write_volume
from medseg_napari.core.metrics import write_metrics_csv
from medseg_napari.core.metrics.batch import CasePair, evaluate_pairs
from medseg_napari.core.phantom import make_phantom


def perturb(labels: np.ndarray, i: int) -> np.ndarray:
    """A plausible wrong prediction: shift, erosion or dilation per label, sometimes a missed label."""
    rng = np.random.default_rng(i)
    out = np.zeros_like(labels)
    for label in (1, 2, 3):
        mask = labels == label
        kind = i % 3
        if kind == 0:
            mask = np.roll(mask, int(rng.integers(1, 3)), axis=int(rng.integers(0, 3)))
        elif kind == 1:
            mask = ndimage.binary_erosion(mask)
        else:
            mask = ndimage.binary_dilation(mask)
        if label == 3 and i % 7 == 0:
            continue  # a missed nodule: infinite distances
        out[mask] = label
    return out


def make_cases(root: Path, n: int, shape: tuple[int, int, int]) -> list[CasePair]:
    (root / "pred").mkdir()
    (root / "ref").mkdir()
    pairs = []
    for i in range(n):
        ph = make_phantom(shape=shape, seed=i, noise=0.0, bias=0.0)
        name = f"case{i:03d}"
        write_volume(ph.labels, root / "ref" / f"{name}.nii.gz")
        write_volume(ph.labels.with_array(perturb(ph.labels.array, i)), root / "pred" / f"{name}.nii.gz")
        pairs.append(CasePair(name, root / "pred" / f"{name}.nii.gz", root / "ref" / f"{name}.nii.gz"))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--shape", default="64,160,160", help="z,y,x voxels of each phantom")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        pairs = make_cases(root, args.cases, shape)  # type: ignore[arg-type]
        print(f"{args.cases} phantom cases of {shape} voxels written in {time.perf_counter() - t0:.1f} s")
        print(f"CPUs available to this process: {len(os.sched_getaffinity(0))}")
        times, csvs = {}, {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            metrics = evaluate_pairs(pairs, workers=workers)
            times[workers] = time.perf_counter() - t0
            path = root / f"metrics_{workers}.csv"
            write_metrics_csv(path, metrics)
            csvs[workers] = path.read_bytes()
            print(
                f"{workers} worker(s): {times[workers]:.2f} s ({times[workers] / args.cases * 1000:.0f} ms per case)"
            )
        print(f"speed-up with 2 workers: {times[1] / times[2]:.2f}x (time ratio 1 worker / 2 workers)")
        print(f"CSVs identical: {csvs[1] == csvs[2]} ({len(csvs[1].splitlines())} lines)")


if __name__ == "__main__":
    main()
