"""The notebook runner: order, filtering, and the early stop when weights cannot be had."""

from __future__ import annotations

import pytest

from helpers import run
from helpers.models import MODELS
from helpers.params import load_params

from conftest import ROOT


def test_study_notebooks_are_numbered_and_in_order():
    names = [p.name for p in run.study_notebooks()]
    assert names == [
        "01_data_selection.ipynb", "02_preprocessing.ipynb", "03_inference.ipynb",
        "04_metrics.ipynb", "05_figures_tables.ipynb",
    ]
    assert [p.name[:2] for p in run.study_notebooks(only=["1", "03"])] == ["01", "03"]
    assert [p.name for p in run.study_notebooks(only=["06"])] == ["06_explore.ipynb"]
    with pytest.raises(ValueError, match="no notebook numbered"):
        run.study_notebooks(only=["42"])


def test_preflight_names_the_address_and_the_smoke_run(monkeypatch, tmp_path):
    p = load_params(ROOT / "params" / "sample.yaml", cache_dir=tmp_path)

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("helpers.models.download", offline)
    with pytest.raises(SystemExit) as err:
        run.preflight(p)
    msg = str(err.value)
    assert MODELS[p.model].url in msg and "params/smoke.yaml" in msg and "Name or service" in msg


def test_preflight_names_a_missing_local_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        run.preflight(load_params(ROOT / "params" / "sample.yaml", checkpoint=str(tmp_path / "no.pt")))


def test_preflight_passes_for_random_weights():
    run.preflight(load_params(ROOT / "params" / "smoke.yaml"))
