"""Tests of helpers.distributed: the inference grid on a Dask LocalCluster.

The slow tests run the real SAM 2 architecture (tiny model, random weights,
128 px, 2 frames each way, 2 organs) on a three-scan dataset built from the
shared TotalSegmentator example (the sample scan copied under three ids),
with a 2-process LocalCluster on 127.0.0.1 shared by the module. They skip
when the shared example data is absent (conftest ``sample_root``).
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from helpers import dataset, grid, preprocess
from helpers import distributed as hd
from helpers.params import StudyParams, load_params
from helpers.sample import SAMPLE_SCAN_ID

ROOT = Path(__file__).resolve().parents[1]
SCANS = (SAMPLE_SCAN_ID, "s0001", "s0002")
ORGANS = ("spleen", "kidney_left")
#: Columns that depend on timing, not on the computation.
TIMING = ("seconds", "encoder_seconds")

# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_root(sample_root, tmp_path_factory) -> Path:
    """The sample scan under three ids (s0000, s0001, s0002)."""
    root = tmp_path_factory.mktemp("data") / "dataset"
    shutil.copytree(sample_root, root)
    meta = pd.read_csv(root / "meta.csv", sep=";")
    for scan_id in SCANS[1:]:
        shutil.copytree(root / SAMPLE_SCAN_ID, root / scan_id)
        meta = pd.concat([meta, meta.iloc[[0]].assign(image_id=scan_id)], ignore_index=True)
    meta.to_csv(root / "meta.csv", sep=";", index=False)
    return root


@pytest.fixture(scope="module")
def client():
    with hd.connect("local", 2) as c:
        yield c


def prepare(tmp: Path, dataset_root: Path, name: str, **overrides) -> tuple[StudyParams, pd.DataFrame]:
    """Notebooks 01 and 02 for a small run in ``tmp``; returns its params and planned runs."""
    p = load_params(
        ROOT / "params/smoke.yaml",
        run_name=name,
        output_root=tmp / "outputs",
        reports_root=tmp / "reports",
        dataset_root=dataset_root,
        build_sample=False,
        organs=list(ORGANS),
        image_size=128,
        max_frames_per_direction=2,
        **overrides,
    )
    sel = dataset.select(
        p.dataset_root, p.organs, max_cases_per_institution=p.max_cases_per_institution,
        min_mask_voxels=p.min_mask_voxels, seed=p.seed, progress=False,
    )
    dataset.save_selection(sel, p.layout)
    geom, errors = preprocess.preprocess_all(
        p.dataset_root, sel.manifest, p.layout, level=p.window_level, width=p.window_width,
        quality=p.jpeg_quality, levels=p.levels, progress=False,
    )
    assert errors.empty and sorted(geom["scan_id"].unique()) == list(SCANS)
    return p, grid.plan_runs(geom, p.approaches, p.ablation_approaches)


def finished(p: StudyParams, scan_id: str) -> list[Path]:
    """Result JSONs of a scan (dot files are unfinished atomic writes)."""
    d = p.layout.predictions_dir / scan_id
    return sorted(f for f in d.glob("*.json") if not f.name.startswith(".")) if d.is_dir() else []


def snapshot(p: StudyParams) -> dict[Path, tuple[int, bytes]]:
    """mtime and bytes of every finished product (JSON and mask) of the run."""
    files = [f for f in p.layout.predictions_dir.rglob("*") if f.is_file() and not f.name.startswith(".")]
    return {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in files}


def untimed(results: pd.DataFrame) -> pd.DataFrame:
    return results.drop(columns=[c for c in TIMING if c in results])


def attempts(client, key_prefix: str, since: float) -> int:
    """How often the scheduler started tasks whose key starts with ``key_prefix`` since ``since``."""

    def count(dask_scheduler) -> int:
        return sum(
            1
            for t in dask_scheduler.transition_log
            if t.timestamp >= since and str(t.key).startswith(key_prefix) and t.finish == "processing"
        )

    return client.run_on_scheduler(count)


# --------------------------------------------------------------------------
# fast checks
# --------------------------------------------------------------------------


def test_params_pickle_for_the_workers():
    p = load_params(ROOT / "params/smoke.yaml", scheduler="tcp://example:8786", workers=4)
    assert pickle.loads(pickle.dumps(p)) == p


def test_connect_refuses_none_and_no_workers():
    with pytest.raises(ValueError, match="in-process"):
        hd.connect("none", 2)
    with pytest.raises(ValueError, match="at least 1"):
        hd.connect("local", 0)


# --------------------------------------------------------------------------
# the grid on a 2-worker LocalCluster
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_distributed_equals_serial(client, dataset_root, tmp_path):
    p_serial, runs = prepare(tmp_path, dataset_root, "serial")
    p_dist, runs_dist = prepare(tmp_path, dataset_root, "dist")
    pd.testing.assert_frame_equal(runs, runs_dist)

    predictor, info = grid.load_model(p_serial)
    serial = grid.run_grid(p_serial, runs, predictor, info, progress=False)
    dist = hd.run_grid_distributed(p_dist, runs, client, progress=False)

    assert len(serial) == len(runs) == 3 * len(ORGANS) * 4 and (serial["status"] == "ok").all()
    assert hd.model_info(client, p_dist) == info
    pd.testing.assert_frame_equal(untimed(dist), untimed(serial))
    on_disk = [pd.read_csv(q.layout.results, dtype={"scan_id": str}) for q in (p_dist, p_serial)]
    pd.testing.assert_frame_equal(untimed(on_disk[0]), untimed(on_disk[1]))
    for rel in serial["pred_path"]:
        a, b = nib.load(p_serial.run_dir / rel), nib.load(p_dist.run_dir / rel)
        assert a.get_data_dtype() == b.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(a.affine, b.affine)
        assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)), rel
    # Feature reuse stays within a task: the ablation run reuses the caudal run's frames.
    ablation = dist[~dist["negatives"]]
    assert (ablation["encoder_seconds"] == 0).all()


@pytest.mark.slow
def test_killed_worker_loses_no_finished_run(client, dataset_root, tmp_path):
    p, runs = prepare(tmp_path, dataset_root, "kill")
    per_scan = len(runs) // len(SCANS)
    pids = client.run(os.getpid)

    def half_done() -> tuple[str, str] | None:
        """(worker, scan) of a running scan task with some runs finished and at least two to go."""
        for worker, keys in client.processing().items():
            for key in keys:
                scan_id = next((s for s in SCANS if str(key).startswith(f"scan-{s}-")), None)
                if scan_id is not None and 0 < len(finished(p, scan_id)) < per_scan - 1:
                    return worker, scan_id
        return None

    t0 = time.time()
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(hd.run_grid_distributed, p, runs, client, progress=False)
        while (victim := half_done()) is None and not job.done():
            time.sleep(0.02)
        assert victim is not None, "the grid finished before a scan was caught half done"
        worker, scan_id = victim
        before = snapshot(p)
        done_in_victim = finished(p, scan_id)
        os.kill(pids[worker], signal.SIGKILL)
        results = job.result(timeout=600)

    assert 0 < len(done_in_victim) < per_scan
    assert attempts(client, f"scan-{scan_id}-", t0) >= 2  # the interrupted task ran again
    assert len(results) == len(runs) and (results["status"] == "ok").all()
    keys = ["scan_id", "organ", "approach", "negatives"]
    assert set(map(tuple, results[keys].values)) == set(map(tuple, runs[keys].values))
    # Every run finished before the kill (also those of the interrupted scan) was kept, not redone.
    after = snapshot(p)
    for f, (mtime, data) in before.items():
        assert after[f] == (mtime, data), f
    assert len(after) == 2 * len(runs)
    # The nanny replaced the killed worker.
    client.wait_for_workers(2, timeout=120)
    assert pids[worker] not in client.run(os.getpid).values()


@pytest.mark.slow
def test_failing_scans_become_failed_rows(client, dataset_root, tmp_path):
    root = tmp_path / "dataset"
    shutil.copytree(dataset_root, root)
    p, runs = prepare(tmp_path, root, "fail", max_retries=1)
    per_scan = len(runs) // len(SCANS)
    # s0001: its CT is unreadable -> run_scan records failed rows, the task succeeds.
    (root / "s0001" / "ct.nii.gz").write_bytes(b"not a nifti")
    # s0002: a corrupt result JSON -> the task itself raises on every attempt.
    bad = grid.result_path(p.layout, "s0002", "spleen", "mid", True)
    bad.parent.mkdir(parents=True)
    bad.write_text("{truncated")

    t0 = time.time()
    results = hd.run_grid_distributed(p, runs, client, progress=False)

    assert len(results) == len(runs)
    by_scan = results.groupby("scan_id")["status"]
    assert (by_scan.get_group(SAMPLE_SCAN_ID) == "ok").all()
    assert (by_scan.get_group("s0001") == "failed").all() and (by_scan.get_group("s0002") == "failed").all()
    s2 = results[results["scan_id"] == "s0002"]
    assert s2["error"].str.startswith("JSONDecodeError").all() and s2["traceback"].str.contains("json").all()
    assert results.loc[results["scan_id"] == "s0001", "error"].str.len().gt(0).all()
    assert len(finished(p, SAMPLE_SCAN_ID)) == per_scan and finished(p, "s0001") == []
    # The failing task ran 1 + max_retries times, then gave up.
    assert attempts(client, "scan-s0002-", t0) == 1 + p.max_retries
    assert pd.read_csv(p.layout.results, dtype={"scan_id": str})["status"].value_counts()["failed"] == 2 * per_scan
