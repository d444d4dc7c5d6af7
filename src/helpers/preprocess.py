"""Preprocessing (notebook 02): SAM 2 frames and organ geometry per scan.

For each scan, the axial slices of the *slab* (the contiguous range of slices
from the lowest to the highest slice that contains any included study organ)
are windowed (:func:`helpers.volumes.window_to_uint8`) and written as
``<frame>.jpg``, SAM 2's naming, with frame 0 the most caudal slice. A
``frames.json`` beside them records the frame -> slice index map and the
settings, so that a prediction can be put back on the CT grid.

An MR scan (``modality="mr"``) has no Hounsfield scale: its frames use a
per-volume percentile window instead (:func:`helpers.readers.percentile_window`),
recorded in ``frames.json`` too.

The JPEG quality defaults to 95: OpenCV's default (which the paper's pipeline
most likely used through ``cv2.imwrite``); it keeps the grey levels of a
windowed slice within a few units while SAM 2 reads only JPEG.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from helpers.dataset import image_path, mask_path
from helpers.geometry import organ_geometry
from helpers.volumes import Volume, VolumeError, check_same_grid, load_volume, slice_to_image

FRAMES_META = "frames.json"


@dataclass
class ScanData:
    """A scan's CT and the masks of its included organs, canonical RAS+."""

    scan_id: str
    ct: Volume
    masks: dict[str, np.ndarray]


def load_scan(root: Path, scan_id: str, organs: Sequence[str]) -> ScanData:
    """Load a scan's CT and organ masks; every mask must be on the CT's grid.

    Raises :class:`~helpers.volumes.VolumeError` naming the file at fault.
    """
    ct = load_volume(image_path(root, scan_id))
    masks = {}
    for organ in organs:
        vol = load_volume(mask_path(root, scan_id, organ))
        check_same_grid(ct, vol)
        masks[organ] = vol.data > 0
    return ScanData(scan_id=scan_id, ct=ct, masks=masks)


def slab_range(masks: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """First and last slice (inclusive) containing any of ``masks``."""
    any_z = np.zeros(next(iter(masks.values())).shape[2], dtype=bool)
    for m in masks.values():
        any_z |= m.any(axis=(0, 1))
    zs = np.flatnonzero(any_z)
    if zs.size == 0:
        raise ValueError("no organ voxel in any mask: the slab is empty")
    return int(zs[0]), int(zs[-1])


def write_frames(
    scan: ScanData,
    out_dir: Path,
    *,
    level: float | None,
    width: float | None,
    quality: int,
    modality: str = "ct",
    percentiles: Sequence[float] = (0.5, 99.5),
) -> dict:
    """Write the scan's slab as SAM 2 JPEG frames into ``out_dir`` (atomic).

    ``modality="ct"`` (default) applies the CT window ``level``/``width``;
    ``modality="mr"`` ignores them and maps the ``percentiles`` (low, high)
    of the whole volume to 0 and 255 (:func:`helpers.readers.percentile_window`).
    Returns the frames metadata (also saved as ``frames.json``). When
    ``out_dir`` already holds frames made with the same settings, nothing is
    rewritten.
    """
    from helpers.readers import intensity_to_uint8

    modality = modality.lower()
    if modality not in ("ct", "mr"):
        raise ValueError(f"write_frames: unknown modality {modality!r}; expected 'ct' or 'mr'")
    out_dir = Path(out_dir)
    z0, z1 = slab_range(scan.masks)
    meta = {
        "scan_id": scan.scan_id,
        "slices": list(range(z0, z1 + 1)),
        "shape": list(scan.ct.shape),
        "window_level": level if modality == "ct" else None,
        "window_width": width if modality == "ct" else None,
        "jpeg_quality": quality,
        "orientation": "canonical RAS+; image row 0 = anterior, column 0 = patient's right",
    }
    if modality == "mr":  # CT metadata stays as before, so existing CT frames are reused
        meta.update({"modality": "mr", "mr_percentiles": [float(q) for q in percentiles]})
    existing = out_dir / FRAMES_META
    if existing.is_file() and json.loads(existing.read_text()) == meta:
        return meta
    img8 = intensity_to_uint8(scan.ct.data, modality, level=level, width=width, percentiles=percentiles)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        for frame, z in enumerate(meta["slices"]):
            Image.fromarray(slice_to_image(img8[:, :, z])).save(tmp / f"{frame}.jpg", quality=quality)
        (tmp / FRAMES_META).write_text(json.dumps(meta, indent=1))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def read_frames_meta(frames_dir: Path) -> dict:
    """Read ``frames.json`` of a frames folder (clear error when absent)."""
    path = Path(frames_dir) / FRAMES_META
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no frames metadata; run the preprocessing notebook (02) first")
    return json.loads(path.read_text())


def scan_geometry(scan: ScanData, levels: Mapping[str, float]) -> list[dict]:
    """One geometry row per organ of the scan (volume, extent, start slices, areas)."""
    return [{"scan_id": scan.scan_id, "organ": organ, **organ_geometry(m, levels)} for organ, m in scan.masks.items()]


def preprocess_all(
    root: Path,
    manifest: pd.DataFrame,
    layout,
    *,
    level: float,
    width: float,
    quality: int,
    levels: Mapping[str, float],
    progress: bool = True,
    modality: str = "ct",
    percentiles: Sequence[float] = (0.5, 99.5),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Frames and geometry for every scan with an included organ.

    ``modality``/``percentiles`` are passed to :func:`write_frames`.

    A scan that fails (unreadable file, mask off the CT grid) is recorded in
    the second returned table (scan_id, error) and skipped; the others go on.
    Returns ``(geometry, errors)``.
    """
    from tqdm.auto import tqdm

    included = manifest[manifest["included"]]
    rows: list[dict] = []
    errors: list[dict] = []
    for scan_id, group in tqdm(included.groupby("scan_id", sort=True), desc="preprocess", disable=not progress):
        try:
            scan = load_scan(root, scan_id, list(group["organ"]))
            write_frames(
                scan, layout.frames_dir(scan_id), level=level, width=width, quality=quality,
                modality=modality, percentiles=percentiles,
            )
        except (VolumeError, ValueError, OSError) as exc:
            errors.append({"scan_id": scan_id, "error": f"{type(exc).__name__}: {exc}"})
            continue
        rows += scan_geometry(scan, levels)
    geometry = pd.DataFrame(rows)
    return geometry, pd.DataFrame(errors, columns=["scan_id", "error"])
