"""Loading one finished run (scan, organ, approach, prompt setting) for the case figures.

:func:`load_case` gathers everything Figures 4 and 5 draw
(:func:`helpers.figures.best_cases_3d`, :func:`helpers.figures.case_figure`)
from the products of the inference grid (:mod:`helpers.grid`) and the
dataset; the figure functions themselves only take arrays.

All 3D arrays are canonical RAS+ (:func:`helpers.volumes.load_volume`); the 2D
images are display images (:func:`helpers.volumes.slice_to_image`), and the
prompt points ``(x, y)`` are ``(column, row)`` of those images, as SAM 2 got
them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.dataset import image_path, mask_path
from helpers.grid import result_path
from helpers.layout import RunLayout
from helpers.metrics import dice
from helpers.readers import intensity_to_uint8
from helpers.volumes import check_same_grid, load_volume, slice_to_image

__all__ = [
    "best_case_per_organ",
    "figure4_cases",
    "figure5_inputs",
    "largest_difference",
    "load_case",
    "read_result",
]


def read_result(layout: RunLayout, scan_id: str, organ: str, approach: str, negatives: bool) -> dict:
    """The result row (JSON) of one finished run; clear error when it is missing."""
    path = result_path(layout, scan_id, organ, approach, negatives)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no finished run for {scan_id} {organ} {approach} "
            f"({'with' if negatives else 'without'} negative prompts); run the inference notebook (03)"
        )
    return json.loads(path.read_text())


def _prompts(raw) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 2) and labels (N,) from the result's ``prompts`` (a JSON string or a dict)."""
    if isinstance(raw, str):
        raw = json.loads(raw)
    points = np.asarray(raw.get("points", []), dtype=float).reshape(-1, 2)
    labels = np.asarray(raw.get("labels", []), dtype=int).reshape(-1)
    if len(points) != len(labels):
        raise ValueError(f"prompts hold {len(points)} points but {len(labels)} labels")
    return points, labels


def load_case(
    layout: RunLayout,
    dataset_root: str | Path,
    scan_id: str,
    organ: str,
    approach: str,
    negatives: bool,
    window_level: float | None,
    window_width: float | None,
    *,
    modality: str = "ct",
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> dict:
    """Everything the case figures need about one finished run.

    The image is made 8-bit as the frames were (:func:`helpers.readers.intensity_to_uint8`:
    the CT window, or the MR percentile window).

    Reads the run's result JSON (``layout.predictions_dir/<scan>/<organ>__
    <approach>__<neg|noneg>.json``), its predicted mask (``pred_path``,
    relative to ``layout.run_dir``), and the scan's ground-truth mask and CT
    from ``dataset_root`` (TotalSegmentator layout), all reoriented to
    canonical RAS+ and checked to lie on the CT's grid.

    Returns
    -------
    dict
        ``scan_id``, ``organ``, ``approach``, ``negatives``; ``gt``, ``pred``
        (bool 3D), ``spacing`` (mm); ``start_slice`` (canonical z index);
        ``image`` (the CT windowed to uint8 over the whole volume, as SAM 2
        saw it, start slice as a display image), ``gt_image``,
        ``pred_image`` (bool display images of that slice); ``points``
        (N, 2) and ``labels`` (N,); ``dice`` (recomputed from the masks).

    Raises
    ------
    FileNotFoundError
        If the run's result JSON is missing.
    helpers.volumes.VolumeError
        If a volume cannot be read or does not lie on the CT's grid.
    ValueError
        If the start slice is outside the volume.
    """
    dataset_root = Path(dataset_root)
    result = read_result(layout, scan_id, organ, approach, negatives)
    ct = load_volume(image_path(dataset_root, scan_id))
    gt_vol = load_volume(mask_path(dataset_root, scan_id, organ))
    pred_vol = load_volume(Path(layout.run_dir) / result["pred_path"])
    check_same_grid(ct, gt_vol)
    check_same_grid(ct, pred_vol)
    gt = np.asarray(gt_vol.data) > 0
    pred = np.asarray(pred_vol.data) > 0
    z = int(result["start_slice"])
    if not 0 <= z < ct.shape[2]:
        raise ValueError(f"start slice {z} is outside the volume ({ct.shape[2]} slices) of {ct.path}")
    windowed = intensity_to_uint8(
        np.asarray(ct.data), modality, level=window_level, width=window_width, percentiles=percentiles
    )
    points, labels = _prompts(result.get("prompts", {}))
    return {
        "scan_id": scan_id,
        "organ": organ,
        "approach": approach,
        "negatives": bool(negatives),
        "gt": gt,
        "pred": pred,
        "spacing": ct.spacing,
        "start_slice": z,
        "image": slice_to_image(windowed[:, :, z]),
        "gt_image": slice_to_image(gt[:, :, z]),
        "pred_image": slice_to_image(pred[:, :, z]),
        "points": points,
        "labels": labels,
        "dice": dice(pred, gt),
    }


def best_case_per_organ(
    metrics: pd.DataFrame,
    organs,
    approach: str = "caudal",
    negatives: bool = True,
    exclude: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The scan with the highest Dice per organ (Figure 4's cases).

    ``metrics`` has columns scan_id, organ, approach, negatives, dice.
    ``exclude`` (columns scan_id, organ) removes cases, e.g. those whose
    ground truth is incomplete. Organs with no finite Dice are left out.
    Returns organ, scan_id, dice in the order of ``organs``.
    """
    sel = metrics[(metrics["approach"] == approach) & (metrics["negatives"] == negatives)]
    sel = sel[np.isfinite(sel["dice"].astype(float))]
    if exclude is not None and len(exclude):
        drop = pd.MultiIndex.from_frame(exclude[["scan_id", "organ"]].astype(str))
        sel = sel[~pd.MultiIndex.from_frame(sel[["scan_id", "organ"]].astype(str)).isin(drop)]
    rows = []
    for organ in organs:
        sub = sel[sel["organ"] == organ]
        if len(sub):
            best = sub.sort_values(["dice", "scan_id"], ascending=[False, True]).iloc[0]
            rows.append({"organ": organ, "scan_id": best["scan_id"], "dice": float(best["dice"])})
    return pd.DataFrame(rows, columns=["organ", "scan_id", "dice"])


def largest_difference(
    metrics: pd.DataFrame, organ: str, first: str = "caudal", second: str = "cranial", negatives: bool = True
) -> pd.Series | None:
    """The scan whose Dice drops most from ``first`` to ``second`` (Figure 5's case).

    Returns a Series with scan_id, dice_<first>, dice_<second>, difference
    (first - second), or None when no scan has both.
    """
    sel = metrics[(metrics["organ"] == organ) & (metrics["negatives"] == negatives)]
    wide = sel.pivot(index="scan_id", columns="approach", values="dice")
    if first not in wide or second not in wide:
        return None
    pairs = wide[[first, second]].astype(float).dropna()
    if pairs.empty:
        return None
    diff = (pairs[first] - pairs[second]).sort_index()
    scan = diff.idxmax()
    return pd.Series(
        {"scan_id": scan, f"dice_{first}": pairs.at[scan, first], f"dice_{second}": pairs.at[scan, second],
         "difference": float(diff[scan])}  # fmt: skip
    )


def figure4_cases(
    layout: RunLayout, params, metrics: pd.DataFrame, *, approach: str, exclude: pd.DataFrame | None = None
) -> list[dict]:
    """Loaded best case per organ, ready for :func:`helpers.figures.best_cases_3d`."""
    best = best_case_per_organ(metrics, list(params.organs), approach=approach, exclude=exclude)
    return [
        load_case(layout, params.dataset_root, b.scan_id, b.organ, approach, True,
                  params.window_level, params.window_width, modality=params.modality,
                  percentiles=params.mr_percentiles)
        for b in best.itertuples()
    ]


def figure5_inputs(
    layout: RunLayout, params, scan_id: str, organ: str, approaches: list[str]
) -> tuple[list[dict], list[dict]]:
    """Start-slice panels and 3D renders of one case and several approaches,
    ready for :func:`helpers.figures.case_figure`."""
    loaded = [
        load_case(layout, params.dataset_root, scan_id, organ, a, True, params.window_level, params.window_width,
                  modality=params.modality, percentiles=params.mr_percentiles)
        for a in approaches
    ]
    panels = [
        {**{k: c[k] for k in ("image", "gt_image", "pred_image", "points", "labels")},
         "title": f"{c['approach']} start slice z={c['start_slice']} (Dice {c['dice']:.3f})"}
        for c in loaded
    ]
    renders = [{"mask": loaded[0]["gt"], "spacing": loaded[0]["spacing"], "title": "ground truth"}]
    renders += [{"mask": c["pred"], "spacing": c["spacing"], "title": f"{c['approach']} prediction"} for c in loaded]
    return panels, renders
