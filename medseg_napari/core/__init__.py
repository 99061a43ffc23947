"""Headless core: I/O and geometry, classical methods, metrics, model, training.

Nothing under this package imports Qt, napari or magicgui (a test enforces it).
"""
