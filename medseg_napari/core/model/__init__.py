"""3D U-Net engine: model file format, inference, training, shipped models.

Import the submodules directly (``from medseg_napari.core.model.inference import
segment``); this package imports nothing heavy by itself.
"""
