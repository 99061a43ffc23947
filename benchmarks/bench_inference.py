"""End-to-end ``segment`` time against a bare ``sliding_window_inference`` call.

Same network (the shipped ``phantom`` model, or ``--model``), same input size,
same window size, overlap, window batch and blending, in the same process. The
end-to-end time adds reading the model, reorienting/resampling, normalising,
progress/cancel checks, argmax and the return to the input grid; the ratio is
what all of that costs on top of the network itself.

Usage::

    python benchmarks/bench_inference.py [--model NAME|PATH] [--repeats 5] [--shape Z Y X]

Prints one block per device (CPU, and CUDA when available).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from medseg_napari.core.model.format import load_model
from medseg_napari.core.model.inference import choose_settings, prepare_channels, segment
from medseg_napari.core.model.network import describe_device, network_of, set_cpu_threads
from medseg_napari.core.model.registry import resolve_model
from medseg_napari.core.phantom import make_phantom


def bare(net, x, model, settings, device) -> np.ndarray:
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        logits = sliding_window_inference(
            x.to(device),
            roi_size=list(model.patch_size),
            sw_batch_size=settings.sw_batch_size,
            predictor=net,
            overlap=settings.overlap,
            mode="gaussian",
        )
        out = torch.argmax(logits[0], 0).cpu().numpy()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="phantom")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shape", type=int, nargs=3, default=(40, 96, 96))
    args = parser.parse_args()

    model = load_model(resolve_model(args.model))
    phantom = make_phantom(shape=args.shape, spacing=model.spacing)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        if device.type == "cpu":
            set_cpu_threads()
        net = network_of(model).to(device)
        array, _ = prepare_channels([phantom.image] * model.n_channels, model)
        x = torch.from_numpy(array)[None]
        settings = choose_settings(device, patch_size=model.patch_size, image_shape=array.shape[1:],
                                   n_classes=model.n_classes, network_kwargs=model.network_kwargs)  # fmt: skip
        bare(net, x, model, settings, device)  # warm-up
        segment(phantom.image, model, device=str(device))
        t_bare, t_full = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            bare(net, x, model, settings, device)
            t_bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            segment([phantom.image] * model.n_channels, model, device=str(device), overlap=settings.overlap,
                    sw_batch_size=settings.sw_batch_size)  # fmt: skip
            t_full.append(time.perf_counter() - t0)
        b, f = statistics.median(t_bare), statistics.median(t_full)
        print(f"device: {describe_device(device)}; model {model.name}; input {tuple(args.shape)}; "
              f"patch {model.patch_size}; overlap {settings.overlap}; sw_batch {settings.sw_batch_size}")  # fmt: skip
        print(f"  bare sliding_window_inference: {b:.3f} s (median of {args.repeats})")
        print(f"  end-to-end segment():          {f:.3f} s")
        print(f"  overhead ratio:                {f / b:.2f}x")


if __name__ == "__main__":
    main()
