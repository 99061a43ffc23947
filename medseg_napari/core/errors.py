"""Exception types shared by the core, the CLI and the widgets.

Every error a user can cause is a :class:`MedsegError`; its message is one line
that names the file (when there is one) and the problem, so the CLI can print it
and exit with code 2 and napari can show it as a notification.
"""

from __future__ import annotations


class MedsegError(Exception):
    """A problem with the user's input, reported as one line, never a traceback."""


class VolumeReadError(MedsegError):
    """A file or folder could not be read as a 3D volume."""


class VolumeWriteError(MedsegError):
    """A volume could not be written."""


class GeometryMismatchError(MedsegError):
    """Two grids (shape, spacing, origin, direction) do not match or overlap."""


class Cancelled(MedsegError):  # noqa: N818 - reads naturally: ``raise Cancelled``
    """A long job was cancelled by the user."""
