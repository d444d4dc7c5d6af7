"""Reading CT volumes and masks, orientation, grid checks and CT windowing.

Conventions used throughout the study:

* Every volume is reoriented to the closest canonical orientation, RAS+
  (``nibabel.as_closest_canonical``): array index 0 increases towards the
  patient's **R**ight, index 1 towards **A**nterior, index 2 towards
  **S**uperior. The slice axis is therefore always
  axis 2 after loading, whatever the file's own axis order, and slice 0 is the
  most caudal one.
* A 2D axial image shown to SAM 2 is in radiological display orientation:
  anterior at the top, the patient's right on the image's left
  (:func:`slice_to_image`). A point ``(x, y)`` is ``(column, row)`` of that
  image.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np


class VolumeError(ValueError):
    """A volume cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Volume:
    """A 3D array in canonical RAS+ orientation with its affine.

    ``original_ornt`` keeps the file's own orientation so that a result can be
    written back voxel for voxel on the file's grid (:func:`to_original`).
    """

    data: np.ndarray
    affine: np.ndarray
    original_ornt: np.ndarray
    path: Path

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three (RAS) array axes."""
        return tuple(float(s) for s in nib.affines.voxel_sizes(self.affine))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]


def load_volume(path: str | Path, *, dtype: type | None = None) -> Volume:
    """Load a 3D NIfTI file (or a DICOM series folder) and reorient it to closest canonical RAS+.

    A folder is read as one DICOM series by
    :func:`helpers.readers.read_dicom_series` (same orientation rules).

    A 4D file whose fourth axis has length 1 is squeezed; any other
    dimensionality, an unreadable file (missing, not NIfTI, not gzip,
    truncated) or a non-finite affine raises :class:`VolumeError` naming the
    file. (Bytes flipped inside a gzip stream can go unnoticed: nibabel stops
    reading before the gzip checksum at the end.)
    """
    path = Path(path)
    if path.is_dir():  # a DICOM series folder
        from helpers.readers import read_dicom_series  # here: readers imports this module

        vol = read_dicom_series(path)
        return vol if dtype is None else Volume(vol.data.astype(dtype, copy=False), vol.affine, vol.original_ornt, path)
    if not path.is_file():
        raise VolumeError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        if img.ndim == 4 and img.shape[3] == 1:
            img = img.slicer[..., 0]
        if img.ndim != 3:
            raise VolumeError(f"{path}: expected a 3D volume, got shape {img.shape}")
        ornt = nib.io_orientation(img.affine)
        canon = nib.as_closest_canonical(img)
        data = np.asarray(canon.dataobj)
    except VolumeError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) as exc:
        raise VolumeError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if not np.all(np.isfinite(canon.affine)):
        raise VolumeError(f"{path}: affine is not finite")
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    return Volume(data=data, affine=canon.affine, original_ornt=ornt, path=path)


def check_same_grid(ct: Volume, mask: Volume, *, atol: float = 1e-3) -> None:
    """Raise :class:`VolumeError` unless ``mask`` lies on the CT's voxel grid.

    Both volumes are compared after canonical reorientation: same shape and
    affines equal within ``atol`` (mm).
    """
    if ct.shape != mask.shape:
        raise VolumeError(f"{mask.path}: shape {mask.shape} differs from the CT's {ct.shape} ({ct.path})")
    if not np.allclose(ct.affine, mask.affine, atol=atol):
        raise VolumeError(
            f"{mask.path}: affine differs from the CT's ({ct.path}); "
            f"max abs difference {np.abs(ct.affine - mask.affine).max():.4g} mm"
        )


def to_original(volume: Volume, data: np.ndarray) -> nib.Nifti1Image:
    """Wrap canonical-orientation ``data`` as an image on the file's original grid."""
    canon = nib.Nifti1Image(data, volume.affine)
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    return canon.as_reoriented(nib.orientations.ornt_transform(ras, volume.original_ornt))


def window_to_uint8(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Apply a CT window and scale to 8 bits, as in the paper.

    Values are clipped to ``[level - width/2, level + width/2]``, then min-max
    scaled over the whole clipped volume to 0..255 and rounded to ``uint8``.
    (For any real abdominal CT the clipped volume reaches both window limits,
    so this equals a fixed mapping of the window to 0..255.) A constant volume
    maps to zeros.
    """
    lo, hi = level - width / 2.0, level + width / 2.0
    clipped = np.clip(hu.astype(np.float32), lo, hi)
    vmin, vmax = float(clipped.min()), float(clipped.max())
    if vmax <= vmin:
        return np.zeros(hu.shape, dtype=np.uint8)
    return np.rint((clipped - vmin) / (vmax - vmin) * 255.0).astype(np.uint8)


def slice_to_image(axial: np.ndarray) -> np.ndarray:
    """Canonical axial slice ``[i (→R), j (→A)]`` to a display image ``[row, col]``.

    Radiological convention: row 0 is the most anterior line, column 0 the
    patient's right-most column. Inverse of :func:`image_to_slice`.
    """
    return axial[::-1, ::-1].T


def image_to_slice(image: np.ndarray) -> np.ndarray:
    """Display image ``[row, col]`` back to a canonical axial slice ``[i, j]``."""
    return image.T[::-1, ::-1]
