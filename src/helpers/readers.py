"""Input formats beyond NIfTI: DICOM series folders, and MR intensities.

* :func:`read_dicom_series` reads one axial (or any-plane) DICOM series from a
  folder with pydicom and returns a :class:`~helpers.volumes.Volume` in the
  study's canonical RAS+ orientation, exactly as
  :func:`helpers.volumes.load_volume` would for the same image stored as
  NIfTI (``load_volume`` dispatches a folder here).
* :func:`percentile_window` maps an MR volume to 8 bits with a per-volume
  percentile window (MR has no Hounsfield scale, so a fixed CT window makes
  no sense).

DICOM geometry (PS3.3 C.7.6.2.1.1): a pixel at column ``c``, row ``r`` of a
slice lies at ``P = IPP + c * dc * X + r * dr * Y`` in the patient's LPS
frame, with ``IPP`` = ImagePositionPatient, ``X`` / ``Y`` the row / column
direction cosines of ImageOrientationPatient and ``(dr, dc)`` =
PixelSpacing (row spacing first). Slices are stacked along the normal
``N = X x Y``, sorted by the projection of their IPP on ``N``; the slice
spacing is the step between those projections (SliceThickness is not used:
slices may overlap or leave gaps). NIfTI's frame is RAS, so the first two
rows of the LPS affine change sign.

Pixel data compressed with JPEG 2000 or JPEG-LS is decoded by pydicom's
plugins (Pillow with OpenJPEG, as in Pillow's wheels, handles JPEG 2000).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from helpers.sample import V2_LABEL_IDS
from helpers.volumes import Volume, VolumeError

#: Relative tolerance on the slice step (and on differences between the
#: orientation cosines of the files) before a series is refused.
_SPACING_RTOL = 0.01
_ORIENTATION_ATOL = 1e-4

#: Label ids of the study organs in TotalSegmentator's "total_mr" label map
#: (totalsegmentator/map_to_binary.py, class_map["total_mr"]); equal to the CT
#: v2 "total" ids for these eight organs.
TOTAL_MR_LABEL_IDS: dict[str, int] = dict(V2_LABEL_IDS)


def _dicom_headers(folder: Path) -> list[tuple[Path, object]]:
    """Every DICOM file with pixel data in ``folder`` (not recursive), headers only."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    out = []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError):
            continue  # not DICOM (a README, DICOMDIR oddities, ...): ignored
        if "PixelData" in ds or "Rows" in ds:  # stop_before_pixels drops PixelData itself
            out.append((f, ds))
    return out


def _floats(ds, keyword: str, n: int, folder: Path, f: Path) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != n:
        raise VolumeError(f"{folder}: {f.name} has no valid {keyword} (needed to place the slice)")
    try:
        return np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise VolumeError(f"{folder}: {f.name} has an unreadable {keyword} ({value!r})") from exc


def read_dicom_series(folder: str | Path) -> Volume:
    """Read the DICOM series in ``folder`` into a canonical RAS+ :class:`Volume`.

    Slices are sorted by their position along the slice normal (the cross
    product of the ImageOrientationPatient cosines), RescaleSlope and
    RescaleIntercept are applied (CT: Hounsfield units; ``float32`` unless
    every value is integral and fits ``int16``), and the affine is built from
    the headers (pixel spacing, orientation cosines, slice step from the
    positions) and converted from DICOM's LPS to NIfTI's RAS frame; then the
    volume is reoriented to closest canonical RAS+ like
    :func:`helpers.volumes.load_volume`. ``Volume.path`` is the folder.

    Raises :class:`~helpers.volumes.VolumeError` naming the folder when it
    holds no DICOM image, mixes series (several SeriesInstanceUID), the
    slices disagree on orientation or size, a slice lacks its position or
    orientation, two slices share a position, or the slice step is uneven
    (a missing slice or a tilted, variable-spacing acquisition).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeError(f"{folder}: not a folder")
    try:
        import pydicom  # noqa: F401
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise VolumeError(f"{folder}: reading DICOM needs pydicom (pip install pydicom)") from exc
    headers = _dicom_headers(folder)
    if not headers:
        raise VolumeError(f"{folder}: no DICOM files found")
    series = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in headers})
    if len(series) > 1:
        raise VolumeError(
            f"{folder}: mixed series ({len(series)} SeriesInstanceUID values: {series[:3]}...); "
            "put one series per folder"
        )
    for f, ds in headers:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise VolumeError(f"{folder}: {f.name} is a multi-frame image; only single-frame series are read")

    f0, ds0 = headers[0]
    iop0 = _floats(ds0, "ImageOrientationPatient", 6, folder, f0)
    for f, ds in headers[1:]:
        iop = _floats(ds, "ImageOrientationPatient", 6, folder, f)
        if not np.allclose(iop, iop0, atol=_ORIENTATION_ATOL):
            raise VolumeError(
                f"{folder}: inconsistent orientation: {f.name} has ImageOrientationPatient {iop.tolist()}, "
                f"{f0.name} {iop0.tolist()}"
            )
    row_cos, col_cos = iop0[:3], iop0[3:]
    if not np.isclose(np.linalg.norm(row_cos), 1, atol=1e-3) or not np.isclose(np.linalg.norm(col_cos), 1, atol=1e-3):
        raise VolumeError(f"{folder}: ImageOrientationPatient {iop0.tolist()} is not made of unit vectors")
    normal = np.cross(row_cos, col_cos)
    if np.linalg.norm(normal) < 0.99:
        raise VolumeError(f"{folder}: ImageOrientationPatient {iop0.tolist()} cosines are not orthogonal")

    sizes = {(int(ds.Rows), int(ds.Columns)) for _, ds in headers}
    if len(sizes) > 1:
        raise VolumeError(f"{folder}: slices differ in size {sorted(sizes)}")
    spacing0 = _floats(ds0, "PixelSpacing", 2, folder, f0)
    for f, ds in headers[1:]:
        sp = _floats(ds, "PixelSpacing", 2, folder, f)
        if not np.allclose(sp, spacing0, rtol=1e-5, atol=1e-6):
            raise VolumeError(f"{folder}: slices differ in PixelSpacing ({f.name} {sp.tolist()}, {f0.name} {spacing0.tolist()})")
    row_spacing, col_spacing = spacing0  # DICOM order: between rows, between columns

    positions = np.stack([_floats(ds, "ImagePositionPatient", 3, folder, f) for f, ds in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    headers = [headers[i] for i in order]
    positions, along = positions[order], along[order]
    if len(headers) > 1:
        steps = np.diff(along)
        if np.any(steps <= 1e-3):
            i = int(np.argmin(steps))
            raise VolumeError(
                f"{folder}: {headers[i][0].name} and {headers[i + 1][0].name} lie at the same position "
                "(duplicate slices, or several series in one folder)"
            )
        step = float(np.median(steps))
        if np.max(np.abs(steps - step)) > _SPACING_RTOL * step:
            raise VolumeError(
                f"{folder}: uneven slice spacing along the normal (steps {steps.min():.4g}..{steps.max():.4g} mm): "
                "a slice is missing or the spacing varies"
            )
        slice_vec = (positions[-1] - positions[0]) / (len(headers) - 1)
    else:
        thickness = ds0.get("SpacingBetweenSlices") or ds0.get("SliceThickness") or 1.0
        slice_vec = normal * float(thickness)

    # voxel data[i, j, k] = column i, row j of slice k
    import pydicom

    slices = []
    integral = True
    for f, _ in headers:
        ds = pydicom.dcmread(str(f))
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - decoder missing or corrupt data, named for the user
            raise VolumeError(f"{folder}: {f.name}: pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        integral &= slope.is_integer() and intercept.is_integer()
        slices.append((pixels.astype(np.float64) * slope + intercept).T)
    data = np.stack(slices, axis=2)
    if integral and data.min() >= np.iinfo(np.int16).min and data.max() <= np.iinfo(np.int16).max:
        data = data.astype(np.int16)
    else:
        data = data.astype(np.float32)

    lps = np.eye(4)
    lps[:3, 0] = row_cos * col_spacing  # along a row: next column
    lps[:3, 1] = col_cos * row_spacing  # down a column: next row
    lps[:3, 2] = slice_vec
    lps[:3, 3] = positions[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    img = nib.Nifti1Image(data, affine)
    ornt = nib.io_orientation(affine)
    canon = nib.as_closest_canonical(img)
    return Volume(data=np.asarray(canon.dataobj), affine=canon.affine, original_ornt=ornt, path=folder)


def percentile_window(volume_data: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Scale an MR volume to 8 bits between two of its own intensity percentiles.

    Values at or below the ``low`` percentile map to 0, at or above the
    ``high`` percentile to 255, linearly in between, rounded to ``uint8``.
    Percentiles are over all voxels of the volume (``numpy.percentile``,
    linear). A volume whose two percentiles coincide maps to zeros.
    Raises ``ValueError`` unless ``0 <= low < high <= 100``.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentile_window: need 0 <= low < high <= 100, got low={low}, high={high}")
    data = np.asarray(volume_data, dtype=np.float32)
    lo, hi = (float(v) for v in np.percentile(data, [low, high]))
    if hi <= lo:
        return np.zeros(data.shape, dtype=np.uint8)
    return np.rint((np.clip(data, lo, hi) - lo) / (hi - lo) * 255.0).astype(np.uint8)


def intensity_to_uint8(
    data: np.ndarray,
    modality: str,
    *,
    level: float | None = None,
    width: float | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
) -> np.ndarray:
    """The study's 8-bit image of a volume: CT window (``level``/``width``) or MR percentiles."""
    from helpers.volumes import window_to_uint8

    modality = modality.lower()
    if modality == "ct":
        if level is None or width is None:
            raise ValueError("intensity_to_uint8: CT needs the window level and width")
        return window_to_uint8(data, level, width)
    if modality == "mr":
        low, high = percentiles
        return percentile_window(data, low, high)
    raise ValueError(f"unknown modality {modality!r}; expected 'ct' or 'mr'")
