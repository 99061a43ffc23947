"""medseg-napari: segment 3D medical volumes (MRI, CT) in napari.

Importing the package pulls in no Qt, napari or torch; the GUI lives in
``medseg_napari._widgets`` and the headless core in ``medseg_napari.core``.
"""

__version__ = "0.1.0"
