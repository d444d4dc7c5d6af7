"""The inference grid (notebook 03): every organ x approach (+ ablation) of every scan.

A *run* is one (scan, organ, approach, negatives). Its products, written
atomically into ``outputs/<run>/predictions/<scan>/``:

* ``<organ>__<approach>__<neg|noneg>.nii.gz``: the predicted mask on the CT's
  own grid and affine (uint8);
* ``<organ>__<approach>__<neg|noneg>.json``: its result row (prompts, seed,
  model, checkpoint sha256, seconds, ...), written last: a run whose JSON
  exists with the same settings (:func:`run_fingerprint`) is finished and is
  never recomputed; one made with other settings is redone.

A run or a whole scan that fails (unreadable file, out of memory, ...) is
recorded with its error (``status = "failed"``, not saved as finished, so a
later call retries it) and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from helpers.files import atomic_write, write_csv
from helpers.inference import ModelInfo, ScanVideo, StudyVideoPredictor, build_predictor, select_device
from helpers.layout import RunLayout
from helpers.models import resolve_checkpoint
from helpers.params import StudyParams
from helpers.preprocess import ScanData, load_scan, read_frames_meta
from helpers.prompts import Prompts, prompt_rng, sample_prompts
from helpers.reporting import checkpoint_digest
from helpers.volumes import image_to_slice, slice_to_image, to_original

RUN_COLUMNS = ["scan_id", "organ", "approach", "negatives", "start_slice"]


def run_key(organ: str, approach: str, negatives: bool) -> str:
    """File stem of one run's products."""
    return f"{organ}__{approach}__{'neg' if negatives else 'noneg'}"


def plan_runs(geometry: pd.DataFrame, approaches: Iterable[str], ablation_approaches: Iterable[str]) -> pd.DataFrame:
    """All runs of the grid: every organ x approach with negatives, plus the
    runs without negatives for ``ablation_approaches``; start slices from the
    geometry table of notebook 02 (columns ``z_<approach>``)."""
    rows = []
    ablation = set(ablation_approaches)
    for g in geometry.itertuples(index=False):
        for approach in approaches:
            for negatives in (True, False) if approach in ablation else (True,):
                rows.append(
                    {
                        "scan_id": g.scan_id,
                        "organ": g.organ,
                        "approach": approach,
                        "negatives": negatives,
                        "start_slice": int(getattr(g, f"z_{approach}")),
                    }
                )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def result_path(layout: RunLayout, scan_id: str, organ: str, approach: str, negatives: bool) -> Path:
    return layout.predictions_dir / scan_id / f"{run_key(organ, approach, negatives)}.json"


def load_model(params: StudyParams) -> tuple[StudyVideoPredictor, ModelInfo]:
    """Resolve the checkpoint (download if needed) and build the predictor."""
    path = resolve_checkpoint(params.model, params.checkpoint, params.cache_dir)
    return build_predictor(
        params.model,
        path,
        image_size=params.image_size,
        device=select_device(params.device),
        seed=params.seed,
        checkpoint_sha256="random" if path is None else checkpoint_digest(params),
    )


def case_prompts(params: StudyParams, scan: ScanData, organ: str, approach: str, z: int) -> Prompts:
    """The paper's prompts for one (scan, organ, approach) on canonical slice ``z``.

    Seeded by (run seed, scan, organ, approach); the run without negatives
    uses ``.positives_only()`` of the same prompts.
    """
    return sample_prompts(
        slice_to_image(scan.masks[organ][:, :, z]),
        n_positive=params.n_positive,
        n_negative=params.n_negative,
        min_distance=params.negative_min_distance,
        max_distance=params.negative_max_distance,
        rng=prompt_rng(params.seed, scan.scan_id, organ, approach),
    )


def run_fingerprint(params: StudyParams, info: ModelInfo, frames_meta: dict) -> str:
    """Hash of everything that shapes a run's mask besides its (organ, approach, negatives, start slice).

    A finished run is reused only when its fingerprint matches: changing the
    model, weights, input size, seed, prompt settings, frame limit or frames
    makes the grid recompute it. Feature reuse and the device are left out
    (reuse is exact; a device change is the user's call).
    """
    import hashlib

    key = {
        "model": info.model,
        "checkpoint_sha256": info.checkpoint_sha256,
        "image_size": info.image_size,
        "seed": params.seed,
        "n_positive": params.n_positive,
        "n_negative": params.n_negative,
        "negative_distance": [params.negative_min_distance, params.negative_max_distance],
        "max_frames_per_direction": params.max_frames_per_direction,
        "frames": frames_meta,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def frames_to_volume(masks: np.ndarray, slices: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Frame masks ``(frames, rows, cols)`` back onto the canonical CT grid (uint8)."""
    vol = np.zeros(tuple(shape), dtype=np.uint8)
    for frame, z in enumerate(slices):
        vol[:, :, z] = image_to_slice(masks[frame])
    return vol


def failed_row(run: dict, model: str, exc: BaseException, tb: str = "") -> dict:
    """The result row of a run that failed: the run's keys, the error, the traceback."""
    return {**run, "status": "failed", "error": f"{type(exc).__name__}: {exc}", "model": model, "traceback": tb}


def run_scan(
    scan_id: str,
    runs: pd.DataFrame,
    params: StudyParams,
    predictor: StudyVideoPredictor,
    info: ModelInfo,
    *,
    reuse_features: bool | None = None,
    progress: bool = True,
) -> list[dict]:
    """Do every unfinished run of one scan; returns all its result rows.

    With feature reuse (the default, from ``params.reuse_features``) the scan's
    slices are encoded once and shared by all its runs; without, each run
    gets a fresh SAM 2 state, exactly as the official usage.
    """
    layout = params.layout
    reuse = params.reuse_features if reuse_features is None else reuse_features
    runs = runs[runs["scan_id"] == scan_id]
    frames_dir = layout.frames_dir(scan_id)
    try:
        meta = read_frames_meta(frames_dir)
    except Exception as exc:  # noqa: BLE001 - a broken scan is recorded, the grid goes on
        tb = traceback.format_exc(limit=5)
        return [failed_row(r, info.model, exc, tb) for r in runs.to_dict("records")]
    fingerprint = run_fingerprint(params, info, meta)
    rows: list[dict] = []
    pending = []
    for run in runs.to_dict("records"):
        done = result_path(layout, scan_id, run["organ"], run["approach"], run["negatives"])
        row = json.loads(done.read_text()) if done.is_file() else None
        if row is not None and row.get("fingerprint") == fingerprint and row.get("start_slice") == run["start_slice"]:
            rows.append(row)
        else:  # not done yet, or done with other settings: (re)compute
            pending.append(run)
    if not pending:
        return rows
    try:
        scan = load_scan(params.dataset_root, scan_id, sorted({r["organ"] for r in pending}))
        video = ScanVideo(predictor, frames_dir, reuse_features=True) if reuse else None
    except Exception as exc:  # noqa: BLE001 - a broken scan is recorded, the grid goes on
        tb = traceback.format_exc(limit=5)
        return rows + [failed_row(r, info.model, exc, tb) for r in pending]
    slices: list[int] = meta["slices"]
    prompts_cache: dict[tuple[str, str], Prompts] = {}
    for run in tqdm(pending, desc=f"runs {scan_id}", leave=False, disable=not progress):
        organ, approach, negatives = run["organ"], run["approach"], bool(run["negatives"])
        try:
            z = int(run["start_slice"])
            if z not in slices:
                raise ValueError(f"start slice {z} is outside the frames of {frames_dir}")
            key = (organ, approach)
            if key not in prompts_cache:
                prompts_cache[key] = case_prompts(params, scan, organ, approach, z)
            prompts = prompts_cache[key] if negatives else prompts_cache[key].positives_only()
            enc0 = predictor.encoder_seconds
            t0 = time.perf_counter()
            runner = video if video is not None else ScanVideo(predictor, frames_dir, reuse_features=False)
            masks = runner.segment(slices.index(z), prompts, params.max_frames_per_direction)
            seconds = time.perf_counter() - t0
            pred = frames_to_volume(masks, slices, scan.ct.shape)
            stem = run_key(organ, approach, negatives)
            pred_path = layout.predictions_dir / scan_id / f"{stem}.nii.gz"
            img = to_original(scan.ct, pred)
            img.set_data_dtype(np.uint8)
            atomic_write(pred_path, lambda tmp: nib.save(img, str(tmp)))  # tmp keeps .nii.gz
            row = {
                **run,
                "negatives": negatives,
                "start_frame": slices.index(z),
                "n_frames": len(slices),
                "n_positive": prompts.n_positive,
                "n_negative": prompts.n_negative,
                "prompts": prompts.to_json(),
                "seed": params.seed,
                **{k: v for k, v in asdict(info).items()},
                "weights": "random" if info.random_weights else "pretrained",
                "max_frames_per_direction": params.max_frames_per_direction,
                "reuse_features": reuse,
                "fingerprint": fingerprint,
                "pred_voxels": int(pred.sum()),
                "pred_path": str(pred_path.relative_to(layout.run_dir)),
                "seconds": round(seconds, 3),
                "encoder_seconds": round(predictor.encoder_seconds - enc0, 3),
                "status": "ok",
                "error": "",
            }
            atomic_write(
                result_path(layout, scan_id, organ, approach, negatives),
                lambda tmp: tmp.write_text(json.dumps(row, indent=1)),
            )
            rows.append(row)
        except Exception as exc:  # noqa: BLE001 - recorded per run; the grid goes on
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            rows.append(failed_row(run, info.model, exc, traceback.format_exc(limit=5)))
    return rows


def run_grid(
    params: StudyParams,
    runs: pd.DataFrame,
    predictor: StudyVideoPredictor,
    info: ModelInfo,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the grid scan by scan in this process and write ``results.csv``."""
    rows: list[dict] = []
    scans = sorted(runs["scan_id"].unique())
    for scan_id in tqdm(scans, desc="scans", disable=not progress):
        rows += run_scan(scan_id, runs, params, predictor, info, progress=progress)
    return write_results(rows, params.layout)


def write_results(rows: list[dict], layout: RunLayout) -> pd.DataFrame:
    """Gather result rows into ``results.csv`` (sorted, one row per run)."""
    results = pd.DataFrame(rows)
    if len(results):
        results = results.sort_values(["scan_id", "organ", "approach", "negatives"], ignore_index=True)
    write_csv(results, layout.results)
    return results


def params_of_results(params: StudyParams, results: pd.DataFrame) -> StudyParams:
    """``params`` with the model, weights and input size that produced ``results``.

    Notebooks 04-05 describe and stamp what notebook 03 actually ran (which a
    papermill override may have changed), not what the parameter file says.
    Raises ``ValueError`` when the finished rows disagree among themselves.
    """
    done = results[results["status"] == "ok"]
    if done.empty:
        return params
    for col in ("model", "weights", "image_size", "checkpoint"):
        if done[col].nunique() > 1:
            raise ValueError(f"results.csv mixes {col} values {sorted(map(str, done[col].unique()))}")
    row = done.iloc[0]
    checkpoint = params.checkpoint if params.checkpoint == "official" else str(row["checkpoint"])
    if row["weights"] == "random":
        checkpoint = "random"
    return dataclasses.replace(params, model=str(row["model"]), image_size=int(row["image_size"]), checkpoint=checkpoint)
