"""Tests of helpers.explorer (notebook 06's logic and widgets), without a browser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import explorer as explorer_mod
from helpers.explorer import Explorer, build_explorer_ui, open_explorer
from helpers.geometry import percentile_slice
from helpers.grid import frames_to_volume
from helpers.params import load_params
from helpers.prompts import prompt_rng, sample_prompts
from helpers.readers import percentile_window
from helpers.reporting import MODEL_LABELS_STAMP, RANDOM_WEIGHTS_STAMP
from helpers.volumes import image_to_slice, slice_to_image, window_to_uint8

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params" / "smoke.yaml"
SHARED = ROOT.parent / "shared" / "data" / "totalsegmentator-example"


@pytest.fixture(scope="module")
def params(sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    return load_params(SMOKE, dataset_root=sample_root, output_root=out, reports_root=out / "reports",
                       build_sample=False)


@pytest.fixture()
def ex(params, tmp_path):
    return Explorer.from_dataset(params, work_dir=tmp_path / "work")


class GroundTruthVideo:
    """Stands in for helpers.inference.ScanVideo: 'predicts' the ground truth of every frame."""

    masks: np.ndarray = None  # set by the test: the canonical 3D mask to return

    def __init__(self, predictor, frames_dir, reuse_features=True):
        self.slices = json.loads((Path(frames_dir) / "frames.json").read_text())["slices"]
        self.calls = []

    def segment(self, start_frame, prompts, max_frames=None):
        self.calls.append((start_frame, prompts, max_frames))
        return np.stack([slice_to_image(self.masks[:, :, z]) for z in self.slices])


@pytest.fixture()
def fake_video(monkeypatch):
    import helpers.inference

    monkeypatch.setattr(helpers.inference, "ScanVideo", GroundTruthVideo)
    return GroundTruthVideo


# -- loading --------------------------------------------------------------------


def test_from_dataset_loads_the_sample_scan(ex, params):
    assert ex.scan.scan_id == "s0000"
    assert ex.organs == list(params.organs)  # all eight study organs are in the sample
    assert ex.volume.shape == (122, 101, 112)
    assert ex.modality == "ct"
    np.testing.assert_array_equal(ex.image8, window_to_uint8(ex.volume.data, params.window_level, params.window_width))
    assert ex.stamps() == [RANDOM_WEIGHTS_STAMP, MODEL_LABELS_STAMP]
    assert "s0000" in ex.describe() and "3.00 x 3.00 x 3.00 mm" in ex.describe()


def test_from_dataset_unknown_scan_is_a_clear_error(params, tmp_path):
    with pytest.raises(ValueError, match="nope.*meta.csv"):
        Explorer.from_dataset(params, "nope", work_dir=tmp_path)


def test_open_explorer_needs_labels_with_a_scan(params):
    with pytest.raises(ValueError, match="label map"):
        open_explorer(params, scan=SHARED / "example_ct.nii.gz")


def test_default_work_dir_is_temporary_and_removed(params):
    e = Explorer.from_dataset(params)
    work = e.work_dir
    assert work.is_dir() and "sam2-explore-" in work.name
    e._cleanup()
    assert not work.exists()


# -- prompts ----------------------------------------------------------------------


def test_generate_prompts_is_the_papers_draw(ex, params):
    ex.select(organ="kidney_left", approach="mid", seed=3)
    prompts = ex.generate_prompts()
    z = percentile_slice(ex.scan.masks["kidney_left"], params.levels["mid"])
    assert ex.prompt_slice == ex.z == z
    expected = sample_prompts(
        slice_to_image(ex.scan.masks["kidney_left"][:, :, z]), n_positive=params.n_positive,
        n_negative=params.n_negative, min_distance=params.negative_min_distance,
        max_distance=params.negative_max_distance, rng=prompt_rng(3, "s0000", "kidney_left", "mid"),
    )
    np.testing.assert_array_equal(prompts.points, expected.points)
    np.testing.assert_array_equal(prompts.labels, expected.labels)
    np.testing.assert_array_equal(ex.prompts.points, expected.points)
    # positives lie in the organ, negatives outside it
    gt = ex.gt_image()
    for (x, y), lab in zip(prompts.points.astype(int), prompts.labels):
        assert gt[y, x] == bool(lab)


def test_generate_prompts_matches_the_batch_grid(ex, params):
    from helpers import grid

    if not hasattr(grid, "case_prompts"):
        pytest.skip("helpers.grid.case_prompts not available")
    for approach in params.approaches:
        ex.select(organ="spleen", approach=approach)
        got = ex.generate_prompts()
        want = grid.case_prompts(params, ex.scan, "spleen", approach, ex.prompt_slice)
        np.testing.assert_array_equal(got.points, want.points)


def test_seed_approach_and_ablation_change_the_prompts(ex):
    ex.select(organ="liver")
    a = ex.generate_prompts(approach="caudal", seed=0)
    b = ex.generate_prompts(approach="caudal", seed=1)
    assert not np.array_equal(a.points, b.points)
    c = ex.generate_prompts(approach="cranial", seed=0)
    assert ex.prompt_slice > ex.start_slice("caudal")
    assert not np.array_equal(a.points, c.points)
    d = ex.generate_prompts(approach="caudal", seed=0, negatives=False)
    assert d.n_negative == 0
    np.testing.assert_array_equal(d.points, a.positives_only().points)


def test_add_and_remove_points(ex):
    ex.select(organ="liver")
    ex.generate_prompts()
    n = len(ex.points)
    ex.add_point(10, 20, positive=False)
    assert ex.points[-1] == (10.0, 20.0) and ex.labels[-1] == 0
    assert ex.remove_point(11, 21)
    assert len(ex.points) == n
    assert not ex.remove_point(-100, -100, max_distance=3)
    with pytest.raises(ValueError, match="outside"):
        ex.add_point(1000, 5)
    # a point on another slice starts a new set of prompts there
    ex.set_slice(ex.prompt_slice + 1)
    ex.add_point(30, 40)
    assert ex.prompt_slice == ex.z and ex.points == [(30.0, 40.0)] and ex.labels == [1]
    ex.clear_points()
    assert ex.points == [] and len(ex.prompts.points) == 0


def test_select_validates_and_resets(ex):
    with pytest.raises(ValueError, match="organ 'brain'"):
        ex.select(organ="brain")
    with pytest.raises(ValueError, match="unknown approach"):
        ex.select(approach="lateral")
    ex.select(organ="spleen", approach="cranial")
    assert ex.z == ex.start_slice("cranial") and ex.points == []


# -- running (ground truth stands in for SAM 2: checks the plumbing exactly) ----------


def test_run_puts_frames_back_on_the_grid(ex, fake_video):
    ex.predictor = object()  # no model needed by the stand-in
    ex.select(organ="kidney_right", approach="mid")
    ex.generate_prompts()
    fake_video.masks = ex.scan.masks["kidney_right"]
    result = ex.run()
    assert result.dice == 1.0  # prediction == ground truth: the frame <-> slice mapping is exact
    np.testing.assert_array_equal(result.prediction, ex.scan.masks["kidney_right"])
    assert "Dice (3D, kidney_right): 1.000" in ex.dice_text()
    assert ex.slice_dice() == 1.0
    meta = json.loads((ex.frames_dir() / "frames.json").read_text())
    assert result.slab == (meta["slices"][0], meta["slices"][-1])
    assert ex._video.calls[-1][0] == meta["slices"].index(ex.prompt_slice)
    # frames are the study's windowed slices
    frame0 = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(ex.frames_dir() / "0.jpg"))
    assert np.abs(frame0.astype(int) - slice_to_image(ex.image8[:, :, meta["slices"][0]]).astype(int)).mean() < 3


def test_run_needs_points_and_a_slice_in_the_slab(ex, fake_video):
    ex.predictor = object()
    ex.select(organ="liver")
    ex.clear_points()
    with pytest.raises(ValueError, match="no prompt points"):
        ex.run()
    ex.set_slice(0)  # below every organ of the sample
    ex.add_point(50, 50)
    with pytest.raises(ValueError, match="outside the frames"):
        ex.run()


def test_changing_organ_drops_the_prediction(ex, fake_video):
    ex.predictor = object()
    ex.select(organ="spleen")
    ex.generate_prompts()
    fake_video.masks = ex.scan.masks["spleen"]
    ex.run()
    ex.select(organ="liver")
    assert ex.pred_image() is None and "no prediction" in ex.dice_text()


# -- the widgets ----------------------------------------------------------------------


def _click(ui, x, y, button=1):
    from matplotlib.backend_bases import MouseEvent

    px, py = ui.ax.transData.transform((x, y))
    canvas = ui.figure.canvas
    canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", canvas, px, py, button=button))


def test_ui_widgets_clicks_and_buttons(ex, fake_video):
    pytest.importorskip("ipympl")
    import ipywidgets as widgets

    ex.predictor = object()
    ex.select(organ="kidney_left")
    ui = build_explorer_ui(ex)
    assert isinstance(ui, widgets.VBox)
    assert ui.canvas_widget is not None and isinstance(ui.canvas_widget, widgets.DOMWidget)
    assert RANDOM_WEIGHTS_STAMP in ui.banner.value
    assert "Dice" in ui.dice.value and ui.render.value[:4] == b"\x89PNG"
    assert ui.slider.max == ex.n_slices - 1 and ui.slider.value == ex.z

    ui.generate.click()
    assert len(ex.points) == 10 and ui.slider.value == ex.prompt_slice
    _click(ui, 40.0, 30.0)  # positive by default
    assert ex.points[-1] == pytest.approx((40.0, 30.0), abs=0.01) and ex.labels[-1] == 1
    ui.click_mode.value = "negative"
    _click(ui, 20.0, 25.0)
    assert ex.labels[-1] == 0 and len(ex.points) == 12
    ui.click_mode.value = "remove"
    _click(ui, 20.5, 25.5)
    assert len(ex.points) == 11
    _click(ui, 40.2, 30.1, button=3)  # right click removes too
    assert len(ex.points) == 10
    assert "5 positive, 5 negative" in ui.status.value

    fake_video.masks = ex.scan.masks["kidney_left"]
    ui.run_button.click()
    assert "Dice (3D, kidney_left): 1.000" in ui.dice.value

    ui.slider.value = ex.prompt_slice + 2
    assert ex.z == ex.prompt_slice + 2
    ui.next.click()
    assert ex.z == ui.slider.value == ex.prompt_slice + 3
    ui.to_prompt.click()
    assert ex.z == ex.prompt_slice

    ui.organ.value = "spleen"
    assert ex.organ == "spleen" and ex.z == ex.start_slice() and "no prediction" in ui.dice.value


def test_ui_switches_scan_within_the_dataset(params, sample_root, tmp_path):
    import dataclasses

    import pandas as pd

    root = tmp_path / "two"
    root.mkdir()
    for sid in ("s0000", "s0001"):
        (root / sid).symlink_to(sample_root / "s0000", target_is_directory=True)
    meta = pd.read_csv(sample_root / "meta.csv", sep=";")
    pd.concat([meta, meta.assign(image_id="s0001")]).to_csv(root / "meta.csv", sep=";", index=False)
    p2 = dataclasses.replace(params, dataset_root=root)
    ex = Explorer.from_dataset(p2, organs=["spleen", "liver"], work_dir=tmp_path / "work")
    ui = build_explorer_ui(ex, interactive=False)
    assert list(ui.scan.options) == ["s0000", "s0001"] and not ui.scan.disabled
    ui.scan.value = "s0001"
    assert ex.scan.scan_id == "s0001" and ex.organs == ["spleen", "liver"] and "s0001" in ui.info.value
    assert ex.organ == ui.organ.value == "spleen"


def test_ui_errors_are_shown_not_raised(ex):
    ui = build_explorer_ui(ex, interactive=False)
    ex.clear_points()
    ui.run_button.click()  # no points: the error goes to the status line
    assert "no prompt points" in ui.status.value


def test_ui_static_fallback_draws_png(ex):
    ui = build_explorer_ui(ex, interactive=False)
    assert ui.canvas_widget is None and ui.static.value[:4] == b"\x89PNG"


# -- real SAM 2 (random weights): the notebook's headless path ----------------------------


@pytest.mark.slow
def test_run_with_random_weights_tiny(params, tiny_model, tmp_path):
    predictor, info = tiny_model
    ex = Explorer.from_dataset(params, work_dir=tmp_path, predictor=predictor, model_info=info)
    ex.select(organ="kidney_right", approach="mid")
    ex.generate_prompts()
    r = ex.run()
    assert 0.0 <= r.dice <= 1.0
    assert r.prediction.shape == ex.volume.shape and r.prediction.dtype == bool
    assert r.frames_tracked == 2 * params.max_frames_per_direction + 1
    z = np.flatnonzero(r.prediction.any(axis=(0, 1)))
    assert z.size == 0 or (z.min() >= ex.prompt_slice - 3 and z.max() <= ex.prompt_slice + 3)
    assert RANDOM_WEIGHTS_STAMP in ex.stamps()
    assert "Dice (3D, kidney_right)" in ex.dice_text()


@pytest.mark.slow
def test_explorer_equals_the_batch_run(smoke_run, tiny_model, tmp_path):
    """Same scan, organ, approach, seed, frames and model: the explorer reproduces notebook 03's mask."""
    from helpers import grid
    from helpers.volumes import load_volume

    import dataclasses
    import shutil

    p0, geom = smoke_run
    p = dataclasses.replace(p0, output_root=tmp_path / "outputs")  # keep the shared run folder untouched
    shutil.copytree(p0.layout.frames_dir("s0000"), p.layout.frames_dir("s0000"))
    predictor, info = tiny_model
    organs = sorted(geom["organ"].unique())  # the run's included organs: same slab, same frames
    runs = grid.plan_runs(geom, ["mid"], [])
    runs = runs[runs["organ"] == organs[0]]
    rows = grid.run_scan("s0000", runs, p, predictor, info, progress=False)
    assert rows[0]["status"] == "ok", rows[0].get("error")
    batch = load_volume(p.layout.run_dir / rows[0]["pred_path"]).data > 0

    ex = Explorer.from_dataset(p, organs=organs, work_dir=tmp_path / "work", predictor=predictor, model_info=info)
    ex.select(organ=organs[0], approach="mid")
    ex.generate_prompts()
    r = ex.run()
    np.testing.assert_array_equal(r.prediction, batch)


@pytest.mark.slow
def test_mr_volume_with_percentile_window(params, tiny_model, tmp_path):
    mr, seg = SHARED / "example_mr_sm.nii.gz", SHARED / "example_seg_mr.nii.gz"
    if not mr.is_file():
        pytest.skip(f"real MR example not found at {SHARED}")
    predictor, info = tiny_model
    ex = open_explorer(params, scan=mr, labels=seg, label_map="total_mr", modality="mr",
                       mr_percentiles=(1.0, 99.0), model_labels=True)
    ex.work_dir = tmp_path
    ex.predictor, ex.model_info = predictor, info
    assert ex.modality == "mr" and "liver" in ex.organs
    np.testing.assert_array_equal(ex.image8, percentile_window(ex.volume.data, 1.0, 99.0))
    ex.select(organ="liver", approach="mid")
    ex.generate_prompts()
    r = ex.run()
    assert 0.0 <= r.dice <= 1.0
    meta = json.loads((ex.frames_dir() / "frames.json").read_text())
    assert meta["modality"] == "mr" and meta["mr_percentiles"] == [1.0, 99.0]
    assert MODEL_LABELS_STAMP in ex.stamps()


def test_dicom_series_with_its_label_map(params, tmp_path, fake_video):
    dicom, seg = SHARED / "example_ct_dicom", SHARED / "example_seg_dicom.nii.gz"
    if not dicom.is_dir():
        pytest.skip(f"real DICOM example not found at {SHARED}")
    ex = open_explorer(params, scan=dicom, labels=seg, scan_id="dicom")
    ex.work_dir = tmp_path
    assert {"liver", "spleen"} <= set(ex.organs) and ex.volume.shape == (512, 512, 20)
    ex.predictor = object()
    ex.select(organ="spleen")
    prompts = ex.generate_prompts()
    gt = ex.gt_image()
    assert all(gt[int(y), int(x)] for x, y in prompts.points[prompts.labels == 1])
    fake_video.masks = ex.scan.masks["spleen"]
    assert ex.run().dice == 1.0


def test_frames_to_volume_inverts_slice_to_image():
    rng = np.random.default_rng(0)
    vol = rng.random((6, 5, 4)) > 0.5
    slices = [1, 2, 3]
    frames = np.stack([slice_to_image(vol[:, :, z]) for z in slices])
    back = frames_to_volume(frames, slices, vol.shape).astype(bool)
    np.testing.assert_array_equal(back[:, :, 1:4], vol[:, :, 1:4])
    assert not back[:, :, 0].any()
    np.testing.assert_array_equal(image_to_slice(frames[0]), vol[:, :, 1])
