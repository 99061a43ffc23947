"""Subcommands of ``medseg``, one module per domain (see :mod:`medseg_napari.cli`)."""
