"""SAM 2 inference with random weights: exact feature reuse, bidirectional merge, resumable grid.

The weights are random: the masks mean nothing, but they are real model output
and deterministic, which is all these tests need.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import grid
from helpers.inference import FeatureStore, ScanVideo
from helpers.preprocess import load_scan, read_frames_meta

pytestmark = pytest.mark.slow


def test_feature_reuse_is_bitwise_identical_to_the_naive_path(smoke_run, tiny_model):
    p, geom = smoke_run
    predictor, _ = tiny_model
    frames_dir = p.layout.frames_dir("s0000")
    slices = read_frames_meta(frames_dir)["slices"]
    scan = load_scan(p.dataset_root, "s0000", list(p.organs))
    reused = ScanVideo(predictor, frames_dir, reuse_features=True)
    calls0 = predictor.encoder_calls
    visited: set[int] = set()
    n_runs = 0
    for g in geom.itertuples():
        for approach in ("caudal", "cranial"):
            z = getattr(g, f"z_{approach}")
            start = slices.index(z)
            prompts = grid.case_prompts(p, scan, g.organ, approach, z)
            for pr in (prompts, prompts.positives_only()):
                a = reused.segment(start, pr, max_frames=2)
                b = ScanVideo(predictor, frames_dir, reuse_features=False).segment(start, pr, max_frames=2)
                assert a.any(), "random weights still give a non-empty mask here; an empty one proves nothing"
                assert np.array_equal(a, b), f"{g.organ} {approach}: reuse differs from the naive path"
                tracked = range(max(0, start - 2), min(len(slices), start + 3))
                outside = [f for f in range(len(slices)) if f not in tracked]
                assert not a[outside].any(), "frames beyond max_frames must stay empty"
                visited |= set(tracked)
                n_runs += 1
    # The naive path re-encodes on every visit; the reuse path encodes each frame at most once.
    assert n_runs == 8
    assert visited <= set(range(len(slices)))
    assert len(reused.store) == len(visited | {0})
    naive_calls = predictor.encoder_calls - calls0 - (len(reused.store) - 1)
    assert naive_calls > 3 * len(visited)


def test_feature_store_keeps_one_positional_encoding_and_refuses_a_different_one():
    store = FeatureStore()
    pos = [torch.ones(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    out1 = {"backbone_fpn": [torch.rand(1, 2, 4, 4)], "vision_pos_enc": pos}
    out2 = {"backbone_fpn": [torch.rand(1, 2, 4, 4)], "vision_pos_enc": [t.clone() for t in pos]}
    store.put(0, torch.rand(1, 3, 8, 8), out1)
    store.put(1, torch.rand(1, 3, 8, 8), out2)
    assert store.get(1)[1]["vision_pos_enc"] is store.get(0)[1]["vision_pos_enc"]
    with pytest.raises(RuntimeError, match="not be exact"):
        store.put(2, torch.rand(1, 3, 8, 8), {"backbone_fpn": [], "vision_pos_enc": [t + 1 for t in pos]})


def test_segment_rejects_a_start_outside_the_frames(smoke_run, tiny_model):
    p, _ = smoke_run
    video = ScanVideo(tiny_model[0], p.layout.frames_dir("s0000"))
    with pytest.raises(ValueError, match="outside"):
        video.segment(video.num_frames, None)


def test_grid_runs_resumes_and_records_failures(smoke_run, tiny_model, monkeypatch):
    p, geom = smoke_run
    predictor, info = tiny_model
    runs = grid.plan_runs(geom, p.approaches, p.ablation_approaches)
    assert len(runs) == len(geom) * (len(p.approaches) + 1)
    broken = runs.index[(runs["organ"] == "gallbladder") & (runs["approach"] == "mid")][0]
    runs.loc[broken, "start_slice"] = 0  # below the slab: this run must fail alone
    results = grid.run_grid(p, runs, predictor, info, progress=False)
    assert (results["status"] == "failed").sum() == 1
    failed = results[results["status"] == "failed"].iloc[0]
    assert failed["organ"] == "gallbladder" and "outside the frames" in failed["error"]
    ok = results[results["status"] == "ok"]
    assert len(ok) == len(runs) - 1
    row = ok.iloc[0]
    assert row["weights"] == "random" and row["checkpoint_sha256"] == "random"
    pts = json.loads(row["prompts"])
    assert len(pts["points"]) == row["n_positive"] + row["n_negative"]
    # the prediction is on the CT's grid
    import nibabel as nib

    pred = nib.load(str(p.layout.run_dir / row["pred_path"]))
    ct = nib.load(str(p.dataset_root / "s0000" / "ct.nii.gz"))
    assert pred.shape == ct.shape and np.allclose(pred.affine, ct.affine)
    assert int(np.asarray(pred.dataobj).sum()) == row["pred_voxels"]
    # results.csv holds the same rows
    assert len(pd.read_csv(p.layout.results)) == len(runs)

    # Resume: finished runs are never recomputed; the failed one is retried (and fixed now).
    mtimes = {f: f.stat().st_mtime_ns for f in (p.layout.predictions_dir / "s0000").glob("*.json")}
    calls = []
    original = ScanVideo.segment
    monkeypatch.setattr(ScanVideo, "segment", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    runs.loc[broken, "start_slice"] = int(geom.set_index("organ").loc["gallbladder", "z_mid"])
    again = grid.run_grid(p, runs, predictor, info, progress=False)
    assert len(calls) == 1
    assert (again["status"] == "ok").all()
    assert all(f.stat().st_mtime_ns == t for f, t in mtimes.items())


def test_finished_runs_made_with_other_settings_are_redone(smoke_run, tiny_model, monkeypatch):
    import dataclasses

    p, geom = smoke_run
    predictor, info = tiny_model
    p2 = p
    runs = grid.plan_runs(geom[geom["organ"] == "kidney_left"], ("caudal",), ())
    first = grid.run_grid(p2, runs, predictor, info, progress=False)
    calls = []
    original = ScanVideo.segment
    monkeypatch.setattr(ScanVideo, "segment", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    grid.run_grid(p2, runs, predictor, info, progress=False)
    assert calls == []  # same settings: reused
    changed = dataclasses.replace(p2, seed=p2.seed + 1)  # other prompts
    again = grid.run_grid(changed, runs, predictor, info, progress=False)
    assert len(calls) == len(runs)
    assert again["fingerprint"].iloc[0] != first["fingerprint"].iloc[0]
    assert json.loads(again["prompts"].iloc[0]) != json.loads(first["prompts"].iloc[0])


def test_a_scan_that_cannot_be_read_is_recorded_and_the_grid_goes_on(smoke_run, tiny_model, tmp_path):
    p, geom = smoke_run
    predictor, info = tiny_model
    runs = grid.plan_runs(geom, p.approaches, ())
    ghost = runs.assign(scan_id="s9999")
    rows = grid.run_scan("s9999", ghost, p, predictor, info, progress=False)
    assert len(rows) == len(runs) and all(r["status"] == "failed" for r in rows)
    assert "s9999" in rows[0]["error"] and "run the preprocessing notebook (02)" in rows[0]["error"]
