"""Regenerate the sample files in this folder from the package's seeded phantom.

    .venv/bin/python sample_data/make_sample_data.py

The files are exactly what ``medseg_napari.core.phantom.make_phantom(seed=0)``
returns (a test checks it), written with their oblique, anisotropic geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg_napari.core.io import write_volume
from medseg_napari.core.phantom import make_phantom

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Write phantom_t1.nii.gz and phantom_labels.nii.gz beside this script."""
    phantom = make_phantom(seed=0)
    # Store the image as float32 (exact); the labels as uint8.
    write_volume(phantom.image, HERE / "phantom_t1.nii.gz")
    write_volume(phantom.labels.with_array(phantom.labels.array.astype(np.uint8)), HERE / "phantom_labels.nii.gz")


if __name__ == "__main__":
    main()
