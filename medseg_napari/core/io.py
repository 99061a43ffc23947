"""Read and write 3D medical volumes with their exact geometry.

Reading goes through SimpleITK (NIfTI, NRRD, MetaImage, DICOM series); every
failure a user can cause raises :class:`~medseg_napari.core.errors.VolumeReadError`
or :class:`~medseg_napari.core.errors.VolumeWriteError` with a one-line message
that names the file and the problem. Writes are atomic (temporary file, then
rename), so an interrupted save never leaves a half-written mask behind.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg_napari.core.atomic import atomic_output, full_suffix
from medseg_napari.core.errors import VolumeReadError, VolumeWriteError
from medseg_napari.core.geometry import Geometry, array_to_sitk
from medseg_napari.core.volume import Volume

__all__ = [
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "DicomSeries",
    "is_dicom_file",
    "is_readable_path",
    "list_dicom_series",
    "read_volume",
    "write_volume",
]

READ_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")

_TAG_DESCRIPTION = "0008|103e"
_TAG_MODALITY = "0008|0060"


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found in a folder (``uid`` may be empty in anonymised data)."""

    uid: str
    description: str
    modality: str
    files: tuple[str, ...]
    rows: int = 0
    columns: int = 0

    @property
    def n_slices(self) -> int:
        """Number of files (slices) in the series."""
        return len(self.files)

    @property
    def n_voxels(self) -> int:
        """Rows x columns x slices: how "large" the series is."""
        return max(self.rows, 1) * max(self.columns, 1) * self.n_slices

    def to_dict(self) -> dict[str, object]:
        """Plain types for JSON and layer metadata."""
        return {
            "uid": self.uid,
            "description": self.description,
            "modality": self.modality,
            "n_slices": self.n_slices,
            "rows": self.rows,
            "columns": self.columns,
            "folder": str(Path(self.files[0]).parent),
        }


def is_readable_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like something :func:`read_volume` handles (cheap check)."""
    p = Path(path)
    return p.is_dir() or full_suffix(p) in (*READ_EXTENSIONS, ".dcm", ".ima") or is_dicom_file(p)


def _one_line(error: Exception) -> str:
    """The first meaningful line of an ITK exception text, without the C++ location."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for line in lines:
        if "Description:" in line:
            return line.split("Description:", 1)[1].strip()
    return lines[-1] if lines else type(error).__name__


def list_dicom_series(folder: str | os.PathLike) -> list[DicomSeries]:
    """DICOM series in ``folder`` and its sub-folders, largest (most voxels) first.

    Raises
    ------
    VolumeReadError
        If the folder does not exist or holds no DICOM series.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeReadError(f"{folder}: no such folder")
    reader = sitk.ImageSeriesReader()
    series = []
    warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # GDCM warns on every folder without DICOM
    try:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            if not filenames:
                continue
            for uid in reader.GetGDCMSeriesIDs(dirpath):
                files = tuple(reader.GetGDCMSeriesFileNames(dirpath, uid))
                if files:
                    series.append(_describe_series(uid, files))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings)
    if not series:
        raise VolumeReadError(f"{folder}: no DICOM series found in this folder")
    return sorted(series, key=lambda s: -s.n_voxels)


def _describe_series(uid: str, files: tuple[str, ...]) -> DicomSeries:
    info = sitk.ImageFileReader()
    info.SetFileName(files[0])
    info.LoadPrivateTagsOff()
    try:
        info.ReadImageInformation()
        tags = {k: info.GetMetaData(k).strip() for k in info.GetMetaDataKeys()}
    except RuntimeError:
        tags = {}
    return DicomSeries(
        uid=uid,
        description=tags.get(_TAG_DESCRIPTION, ""),
        modality=tags.get(_TAG_MODALITY, ""),
        files=files,
        rows=_int_tag(tags.get("0028|0010")),
        columns=_int_tag(tags.get("0028|0011")),
    )


def _int_tag(value: str | None) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _read_dicom(folder: Path, series_uid: str | None) -> Volume:
    all_series = list_dicom_series(folder)
    if series_uid is None:
        chosen = all_series[0]
    else:
        matches = [s for s in all_series if s.uid == series_uid]
        if not matches:
            known = ", ".join(s.uid for s in all_series)
            raise VolumeReadError(f"{folder}: no series with UID {series_uid} (found: {known})")
        chosen = matches[0]
    if chosen.n_slices < 2:
        raise VolumeReadError(f"{folder}: series {chosen.uid} has a single slice; a 3D volume is needed")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(chosen.files))
    # GDCM applies Rescale Slope/Intercept while reading, so CT values come out in HU.
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise VolumeReadError(f"{folder}: cannot read DICOM series {chosen.uid}: {_one_line(error)}") from None
    return _checked_volume(
        image,
        folder,
        source=str(folder),
        format="DICOM",
        series_uid=chosen.uid,
        series_description=chosen.description,
        modality=chosen.modality,
        dicom_series=[s.to_dict() for s in all_series],
    )


def _checked_volume(image: sitk.Image, path: Path, **metadata: object) -> Volume:
    dim = image.GetDimension()
    components = image.GetNumberOfComponentsPerPixel()
    if dim == 2:
        raise VolumeReadError(f"{path}: is a 2D image; a 3D volume is needed")
    if dim == 4 or (dim == 3 and components > 1):
        n = image.GetSize()[3] if dim == 4 else components
        raise VolumeReadError(
            f"{path}: is a 4D volume ({n} volumes or components); a single 3D volume is needed"
        )
    if dim != 3:
        raise VolumeReadError(f"{path}: has {dim} dimensions; a 3D volume is needed")
    size = image.GetSize()
    if min(size) < 2:
        raise VolumeReadError(f"{path}: has size {size} (x, y, z), a single slice; a 3D volume is needed")
    return Volume.from_sitk(image, **metadata)


def read_volume(path: str | os.PathLike, *, series_uid: str | None = None) -> Volume:
    """Read a 3D volume from a file or a DICOM series folder.

    Parameters
    ----------
    path : str or Path
        A ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd`` file, or
        a folder holding a DICOM series.
    series_uid : str, optional
        For a DICOM folder with several series, which one to read (default: the
        series with most voxels). All series found are listed in
        ``metadata["dicom_series"]``.

    Returns
    -------
    Volume
        z-y-x array with its exact spacing, origin and direction. CT values are in
        Hounsfield units (rescale slope and intercept applied).

    Raises
    ------
    VolumeReadError
        For a missing path, an unknown extension, a corrupt or truncated file, a
        folder with no DICOM, a 2D image or a 4D volume.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/a.nrrd"
    >>> write_volume(Volume(np.ones((2, 3, 4), np.uint8), Geometry(spacing=(3, 1, 1))), path)
    >>> read_volume(path).geometry.spacing
    (3.0, 1.0, 1.0)
    """
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_dicom(path, series_uid)
    suffix = full_suffix(path)
    if suffix in (".dcm", ".ima") or (suffix not in READ_EXTENSIONS and is_dicom_file(path)):
        return _read_dicom(path.parent, series_uid)
    if suffix not in READ_EXTENSIONS:
        raise VolumeReadError(
            f"{path}: unknown file type '{suffix or path.name}' "
            f"(supported: {', '.join(READ_EXTENSIONS)} or a DICOM folder)"
        )
    if path.stat().st_size == 0:
        raise VolumeReadError(f"{path}: the file is empty")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise VolumeReadError(f"{path}: cannot read, the file is corrupt or truncated ({_one_line(error)})") from None
    _check_complete(path, image)
    return _checked_volume(image, path, source=str(path), format=suffix.lstrip(".").upper())


def _check_complete(path: Path, image: sitk.Image) -> None:
    """Refuse files ITK reads without complaint although data is missing.

    ITK's NIfTI reader fills a truncated ``.nii.gz`` or ``.nii`` with zeros and
    says nothing; a user would then correct a mask on a half-empty volume. So the
    gzip stream is checked to its end marker and a plain ``.nii`` for its size.
    """
    problem = None
    if path.name.lower().endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 24):
                    pass
        except (EOFError, OSError, zlib.error) as error:
            problem = str(error) or type(error).__name__
    elif full_suffix(path) == ".nii":
        nbytes = image.GetNumberOfPixels() * image.GetNumberOfComponentsPerPixel() * image.GetSizeOfPixelComponent()
        if path.stat().st_size < nbytes + 348:
            problem = f"{path.stat().st_size} bytes for {nbytes} bytes of voxels"
    if problem:
        raise VolumeReadError(f"{path}: cannot read, the file is corrupt or truncated ({problem})")


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether a file starts with the DICOM preamble and ``DICM`` magic."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def write_volume(
    volume: Volume | np.ndarray,
    path: str | os.PathLike,
    *,
    geometry: Geometry | None = None,
    compress: bool = True,
) -> None:
    """Write a volume (or an array with ``geometry``) atomically.

    The format follows the extension: ``.nii.gz``, ``.nii``, ``.nrrd`` or ``.mha``.
    Boolean arrays are stored as ``uint8``. The target is replaced only once the
    whole file is written.

    Raises
    ------
    VolumeWriteError
        For an unsupported extension, a missing or unwritable folder, or a full disk.
    """
    path = Path(path)
    if isinstance(volume, Volume):
        array, geometry = volume.array, geometry or volume.geometry
    else:
        array = np.asarray(volume)
        if geometry is None:
            raise VolumeWriteError(f"{path}: a plain array needs a geometry to be written")
    suffix = full_suffix(path)
    if suffix not in WRITE_EXTENSIONS:
        raise VolumeWriteError(f"{path}: cannot write '{suffix or path.name}' files (use one of {', '.join(WRITE_EXTENSIONS)})")
    if not path.parent.is_dir():
        raise VolumeWriteError(f"{path}: the folder {path.parent} does not exist")
    if array.dtype == np.int64 and array.size and array.min() >= 0 and array.max() < 2**16:
        array = array.astype(np.uint16)  # label maps from numpy default to int64; keep files small
    image = array_to_sitk(array, geometry)
    try:
        with atomic_output(path) as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
    except (OSError, RuntimeError) as error:
        raise VolumeWriteError(f"{path}: cannot write: {_one_line(error)}") from None
