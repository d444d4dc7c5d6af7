"""Shared fixtures: the real one-scan sample, preprocessed, and a random-weight SAM 2."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "totalsegmentator-example"
SMOKE = ROOT / "params" / "smoke.yaml"


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """The embedded sample built from the shared mirror (skips when absent)."""
    if not SHARED.is_dir():
        pytest.skip(f"real sample files not found at {SHARED}")
    from helpers.sample import build_sample

    return build_sample(tmp_path_factory.mktemp("data") / "sample", SHARED, progress=False)


@pytest.fixture(scope="session")
def smoke_run(sample_root, tmp_path_factory):
    """Smoke parameters on the sample, with data stage (01-02) done into a temp run folder."""
    from helpers import dataset, preprocess
    from helpers.params import load_params

    out = tmp_path_factory.mktemp("outputs")
    p = load_params(SMOKE, dataset_root=sample_root, output_root=out, reports_root=out / "reports",
                    organs=["kidney_left", "gallbladder"], build_sample=False)
    layout = p.layout.ensure()
    sel = dataset.select(p.dataset_root, p.organs, max_cases_per_institution=p.max_cases_per_institution,
                         min_mask_voxels=p.min_mask_voxels, seed=p.seed, progress=False)
    dataset.save_selection(sel, layout)
    geom, errors = preprocess.preprocess_all(p.dataset_root, sel.manifest, layout, level=p.window_level,
                                             width=p.window_width, quality=p.jpeg_quality, levels=p.levels,
                                             progress=False)
    assert errors.empty
    geom.to_csv(layout.geometry, index=False)
    return p, geom


@pytest.fixture(scope="session")
def tiny_model(smoke_run):
    """SAM 2.1 tiny, random weights, 256 px, on the CPU (compute is real, masks meaningless)."""
    from helpers.grid import load_model

    p, _ = smoke_run
    return load_model(p)
