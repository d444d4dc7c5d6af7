"""Tests of helpers.params: reading parameter files, path resolution, overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.params import LEVELS, ORGANS, StudyParams, load_params


def _project(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    params_dir = tmp_path / "proj" / "params"
    params_dir.mkdir(parents=True)
    path = params_dir / name
    path.write_text(text)
    return path


def test_defaults_are_the_papers_settings():
    p = StudyParams()
    assert p.organs == ORGANS and len(ORGANS) == 8
    assert dict(p.levels) == LEVELS == {"caudal": 25.0, "mid": 50.0, "cranial": 75.0}
    assert p.approaches == ("caudal", "mid", "cranial")
    assert (p.window_level, p.window_width, p.min_mask_voxels, p.max_cases_per_institution) == (50.0, 400.0, 100, 20)
    assert (p.n_positive, p.n_negative) == (5, 5)


def test_relative_paths_resolve_against_params_parent(tmp_path, monkeypatch):
    path = _project(tmp_path, "run_name: smoke\ndataset_root: data/ts\nsample_mirror: ../shared/mirror\n")
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    p = load_params(path)
    proj = (tmp_path / "proj").resolve()
    assert p.dataset_root == proj / "data" / "ts"
    assert p.sample_mirror == (tmp_path / "shared" / "mirror").resolve()
    # Defaults that are relative paths are relative to the project root too.
    assert p.output_root == proj / "outputs"
    assert p.reports_root == proj / "reports"
    assert p.cache_dir == proj / "cache"
    assert p.run_dir == proj / "outputs" / "smoke"
    assert p.report_dir == proj / "reports" / "smoke"
    assert p.layout.manifest == proj / "outputs" / "smoke" / "manifest.csv"


def test_relative_path_to_params_file_is_resolved(tmp_path, monkeypatch):
    _project(tmp_path, "dataset_root: data/ts\n")
    monkeypatch.chdir(tmp_path / "proj")
    p = load_params("params/run.yaml")
    assert p.dataset_root == (tmp_path / "proj" / "data" / "ts").resolve()


def test_absolute_paths_are_kept(tmp_path):
    absolute = tmp_path / "elsewhere" / "data"
    path = _project(tmp_path, f"dataset_root: {absolute}\n")
    assert load_params(path).dataset_root == absolute


def test_sample_mirror_defaults_to_none(tmp_path):
    assert load_params(_project(tmp_path, "seed: 1\n")).sample_mirror is None


def test_no_file_gives_defaults_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = load_params()
    assert p.output_root == tmp_path.resolve() / "outputs"
    assert p.organs == ORGANS and p.seed == 0


def test_overrides_apply_and_none_is_ignored(tmp_path):
    path = _project(tmp_path, "seed: 3\nrun_name: fromfile\nmax_cases_per_institution: 7\n")
    p = load_params(path, seed=11, run_name=None, workers=None, organs="liver", output_root="out")
    assert p.seed == 11  # override wins over the file
    assert p.run_name == "fromfile"  # None override ignored
    assert p.workers == StudyParams().workers  # None override ignored, default kept
    assert p.max_cases_per_institution == 7
    assert p.organs == ("liver",)  # a single organ string becomes a tuple
    assert p.output_root == (tmp_path / "proj" / "out").resolve()  # override paths resolve too


def test_file_values_are_coerced(tmp_path):
    path = _project(
        tmp_path,
        "organs: [liver, spleen]\nlevels: {low: 10, high: 90}\nablation_approaches: low\n",
    )
    p = load_params(path)
    assert p.organs == ("liver", "spleen")
    assert dict(p.levels) == {"low": 10.0, "high": 90.0}
    assert all(isinstance(v, float) for v in p.levels.values())
    assert p.ablation_approaches == ("low",)
    assert p.approaches == ("low", "high")


def test_empty_file_gives_defaults(tmp_path):
    p = load_params(_project(tmp_path, ""))
    assert p.seed == 0 and p.organs == ORGANS


def test_unknown_key_names_file_and_key(tmp_path):
    path = _project(tmp_path, "seed: 1\nwindow_levle: 40\n")
    with pytest.raises(ValueError) as info:
        load_params(path)
    msg = str(info.value)
    assert str(path.resolve()) in msg
    assert "window_levle" in msg


def test_unknown_override_is_rejected(tmp_path):
    path = _project(tmp_path, "seed: 1\n")
    with pytest.raises(ValueError, match="no_such_param"):
        load_params(path, no_such_param=3)


def test_unknown_organ_is_rejected(tmp_path):
    path = _project(tmp_path, "organs: [liver, lungs]\n")
    with pytest.raises(ValueError, match="lungs") as info:
        load_params(path)
    assert str(path.resolve()) in str(info.value)
    with pytest.raises(ValueError, match="stomach"):
        load_params(path, organs=["liver", "stomach"])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_params(tmp_path / "params" / "nope.yaml")


def test_non_mapping_file(tmp_path):
    path = _project(tmp_path, "- seed\n- 1\n")
    with pytest.raises(ValueError, match="mapping") as info:
        load_params(path)
    assert str(path.resolve()) in str(info.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("ablation_approaches: [sideways]\n", "ablation_approaches"),
        ("dataset_version: v3\n", "dataset_version"),
        ("negative_min_distance: 4\nnegative_max_distance: 3\n", "negative_min_distance"),
        ("window_width: 0\n", "window_width"),
    ],
)
def test_invalid_values_are_rejected(tmp_path, text, fragment):
    with pytest.raises(ValueError, match=fragment):
        load_params(_project(tmp_path, text))


def test_as_dict_round_trips_through_a_file(tmp_path):
    import yaml

    p = load_params(_project(tmp_path, "seed: 5\norgans: [liver]\n"))
    d = p.as_dict()
    assert d["organs"] == ["liver"] and isinstance(d["dataset_root"], str)
    again_path = tmp_path / "proj" / "params" / "again.yaml"
    again_path.write_text(yaml.safe_dump(d))
    assert load_params(again_path) == p
