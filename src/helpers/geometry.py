"""Organ geometry: start-slice percentiles, cross-sectional areas, volumes.

The percentile definition here is the single one of the study: it picks the
start slices of the inference stage and the levels of the area analysis
(Supplemental Figure 1).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd


def percentile_slice(mask: np.ndarray, q: float) -> int:
    """The ``q``-th percentile z index of a 3D mask (slice axis = axis 2).

    Definition: take the z index of every mask voxel (so each slice weighs by
    its area), and return ``numpy.percentile(z, q, method="lower")``: the
    largest voxel z whose rank is at most ``q/100 * (n - 1)`` in the sorted
    list. This equals ``int(numpy.percentile(z, q))`` (linear interpolation,
    then truncation) whenever the organ's slices are contiguous, and it is
    always a slice that contains the organ.

    Raises ``ValueError`` for an empty mask or ``q`` outside [0, 100].
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    per_slice = np.asarray(mask, dtype=bool).sum(axis=(0, 1))
    if per_slice.sum() == 0:
        raise ValueError("percentile_slice: the mask is empty")
    z = np.repeat(np.arange(per_slice.size), per_slice)
    return int(np.percentile(z, q, method="lower"))


def start_slices(mask: np.ndarray, levels: Mapping[str, float]) -> dict[str, int]:
    """Start slice (z index) per approach, e.g. ``{"caudal": 25, ...}`` -> ``{"caudal": 71, ...}``."""
    return {name: percentile_slice(mask, q) for name, q in levels.items()}


def slice_area(mask: np.ndarray, z: int) -> int:
    """Cross-sectional area (voxels) of a 3D mask on axial slice ``z``."""
    return int(np.count_nonzero(mask[:, :, z]))


def organ_geometry(mask: np.ndarray, levels: Mapping[str, float]) -> dict[str, int]:
    """Volume, z extent, and the start slice and area at every level of one organ."""
    mask = np.asarray(mask, dtype=bool)
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    out = {"volume_voxels": int(mask.sum()), "z_min": int(zs[0]), "z_max": int(zs[-1])}
    for name, z in start_slices(mask, levels).items():
        out[f"z_{name}"] = z
        out[f"area_{name}"] = slice_area(mask, z)
    return out


def volume_table(geometry: pd.DataFrame, organs: list[str]) -> pd.DataFrame:
    """Table 1: organ volume in voxels (mean, SD, min, max, n) per organ."""
    g = geometry.groupby("organ")["volume_voxels"]
    table = pd.DataFrame(
        {
            "mean_voxels": g.mean(),
            "sd_voxels": g.std(ddof=1),
            "min_voxels": g.min(),
            "max_voxels": g.max(),
            "n": g.count(),
        }
    )
    return table.reindex(organs).rename_axis("organ").reset_index()


def area_table(geometry: pd.DataFrame, organs: list[str], levels: Mapping[str, float]) -> pd.DataFrame:
    """Supplemental Figure 1 data: mean and SD area (voxels) per organ and level."""
    rows = []
    for organ in organs:
        sub = geometry[geometry["organ"] == organ]
        for level in levels:
            a = sub[f"area_{level}"]
            rows.append(
                {
                    "organ": organ,
                    "level": level,
                    "mean_area": a.mean() if len(a) else np.nan,
                    "sd_area": a.std(ddof=1) if len(a) > 1 else np.nan,
                    "n": int(a.count()),
                }
            )
    return pd.DataFrame(rows)
