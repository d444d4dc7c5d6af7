"""Per-run metrics (notebook 04): each prediction against its ground-truth mask.

Everything is computed on the CT's grid in canonical orientation, with the
CT's voxel spacing for the surface metrics (:mod:`helpers.metrics`). A run
that failed in the inference stage, or whose files cannot be read, gets NaN
metrics and the reason in ``metric_error``; it is left out of the statistics
(never counted as Dice 0). A prediction that is empty while the organ exists
is a real result: Dice 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from helpers.dataset import mask_path
from helpers.layout import RunLayout
from helpers.metrics import case_metrics
from helpers.volumes import VolumeError, check_same_grid, load_volume

METRIC_COLUMNS = ["dice", "nsd", "hd95_mm", "pred_voxels", "gt_voxels"]


def evaluate(
    results: pd.DataFrame,
    dataset_root: Path,
    layout: RunLayout,
    *,
    tolerance_mm: float,
    progress: bool = True,
) -> pd.DataFrame:
    """Metrics for every result row; returns the rows with metric columns added."""
    out = []
    gt_cache: dict[tuple[str, str], object] = {}
    for row in tqdm(results.to_dict("records"), desc="metrics", disable=not progress):
        rec = {**row, **{c: np.nan for c in METRIC_COLUMNS}, "metric_error": ""}
        if row.get("status") != "ok":
            rec["metric_error"] = f"inference failed: {row.get('error', '')}"
            out.append(rec)
            continue
        try:
            key = (row["scan_id"], row["organ"])
            if key not in gt_cache:
                gt_cache.clear()  # one organ at a time keeps memory flat (rows are sorted by scan, organ)
                gt_cache[key] = load_volume(mask_path(dataset_root, *key))
            gt = gt_cache[key]
            pred = load_volume(layout.run_dir / row["pred_path"])
            check_same_grid(gt, pred)
            rec.update(case_metrics(pred.data > 0, gt.data > 0, gt.spacing, tolerance_mm))
        except (VolumeError, OSError, ValueError) as exc:
            rec["metric_error"] = f"{type(exc).__name__}: {exc}"
        out.append(rec)
    return pd.DataFrame(out)
