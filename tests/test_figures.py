"""Tests of the case figures (helpers.figures, Figures 4 and 5) and of helpers.cases."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import figures as F  # noqa: E402
from helpers.cases import best_case_per_organ, largest_difference, load_case  # noqa: E402
from helpers.dataset import image_path, mask_path  # noqa: E402
from helpers.layout import RunLayout  # noqa: E402
from helpers.metrics import dice  # noqa: E402
from helpers.reporting import RANDOM_WEIGHTS_STAMP  # noqa: E402
from helpers.volumes import load_volume, slice_to_image, to_original, window_to_uint8  # noqa: E402

SHAPE = (12, 10, 8)
SPACING = (1.5, 1.5, 3.0)
STAMPED = f"Figure\n[{RANDOM_WEIGHTS_STAMP}]"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _blob(center, radii, shape=SHAPE) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


# -- render_3d -----------------------------------------------------------------


def test_render_3d_draws_a_surface():
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    F.render_3d(ax, _blob((6, 5, 4), (3, 3, 2)), SPACING, "red", 0.5)
    assert len(ax.collections) == 1
    # extent in mm (voxel centres times spacing, +- half a voxel)
    assert ax.get_zlim() == pytest.approx(((2 - 0.5) * 3.0, (6 + 0.5) * 3.0))
    assert "empty" not in _texts(ax)


def test_render_3d_empty_mask_writes_empty():
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    F.render_3d(ax, np.zeros(SHAPE, bool), SPACING, "red", 0.5)
    assert "empty" in _texts(ax)
    assert len(ax.collections) == 0
    fig.canvas.draw()


def _record_trisurf(ax) -> list:
    """Wrap ``ax.plot_trisurf`` to keep the mesh it is given (x, y, triangles, z)."""
    calls = []
    original = ax.plot_trisurf

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    ax.plot_trisurf = spy
    return calls


def _is_closed(triangles: np.ndarray) -> bool:
    """Every edge of a closed surface is shared by exactly two triangles."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool((counts == 2).all())


def test_render_3d_mask_touching_the_border():
    mask = np.zeros(SHAPE, bool)
    mask[:4, :, 0:3] = True  # touches five faces of the volume
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    calls = _record_trisurf(ax)
    F.render_3d(ax, mask, SPACING, "red", 0.5)
    x, y, triangles, z = calls[0]
    assert _is_closed(np.asarray(triangles))  # padded: the surface closes at the border
    # mm coordinates of the full array; faces half a voxel outside the border voxels
    assert x.min() == pytest.approx(-0.5 * SPACING[0]) and x.max() == pytest.approx(3.5 * SPACING[0])
    assert y.min() == pytest.approx(-0.5 * SPACING[1]) and y.max() == pytest.approx(9.5 * SPACING[1])
    assert z.min() == pytest.approx(-0.5 * SPACING[2]) and z.max() == pytest.approx(2.5 * SPACING[2])
    fig.canvas.draw()
    ax2 = fig.add_subplot(122, projection="3d")
    calls2 = _record_trisurf(ax2)
    F.render_3d(ax2, np.ones((3, 3, 3), bool), (1, 1, 1), "blue", 1.0)  # fills the whole volume
    assert _is_closed(np.asarray(calls2[0][2]))


def test_render_3d_rejects_2d():
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    with pytest.raises(ValueError, match="3D"):
        F.render_3d(ax, np.ones((3, 3), bool), SPACING, "red", 0.5)


# -- Figure 4 --------------------------------------------------------------------


def _case(organ, dice_value, pred_empty=False):
    gt = _blob((6, 5, 4), (3, 3, 2))
    pred = np.zeros_like(gt) if pred_empty else _blob((6, 5, 4), (3, 2.5, 2))
    return {"organ": organ, "gt": gt, "pred": pred, "spacing": SPACING, "dice": dice_value}


def test_best_cases_3d_layout_titles_and_empty():
    cases = [_case("liver", 0.9234), _case("spleen", 0.0, pred_empty=True), _case("pancreas", float("nan"))]
    fig = F.best_cases_3d(cases, STAMPED)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 2 * len(cases)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == len(cases)
    assert "liver" in titles[0] and "Dice 0.923" in titles[0]
    assert "Dice 0.000" in titles[1]
    assert "Dice n/a" in titles[2]
    assert RANDOM_WEIGHTS_STAMP in fig._suptitle.get_text()
    assert any("empty" in _texts(ax) for ax in fig.axes)
    fig.canvas.draw()


def test_best_cases_3d_needs_cases():
    with pytest.raises(ValueError):
        F.best_cases_3d([], "t")


# -- start slice and Figure 5 ------------------------------------------------------


def _panel(title="caudal (Dice 0.924)", gt_empty=False, pred_empty=False):
    image = (np.arange(20 * 24).reshape(20, 24) % 256).astype(np.uint8)
    gt = np.zeros((20, 24), bool)
    if not gt_empty:
        gt[5:12, 4:14] = True
    pred = np.zeros((20, 24), bool)
    if not pred_empty:
        pred[6:12, 5:15] = True
    points = np.array([[6.0, 7.0], [10.0, 9.0], [2.0, 3.0]])
    labels = np.array([1, 1, 0])
    return {"image": image, "gt_image": gt, "pred_image": pred, "points": points, "labels": labels, "title": title}


def test_start_slice_panel_draws_everything():
    fig, ax = plt.subplots()
    p = _panel()
    F.start_slice_panel(ax, p["image"], p["gt_image"], p["pred_image"], p["points"], p["labels"], "caudal")
    assert ax.get_title() == "caudal"
    # anterior (row 0) at the top: y axis inverted
    bottom, top = ax.get_ylim()
    assert bottom > top
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["ground truth", "prediction", "positive point", "negative point"]
    offsets = [c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets())]
    pts = np.concatenate([o for o in offsets if np.asarray(o).shape[-1] == 2 and len(o) <= 3])
    # scatter points are at (x, y) = (column, row)
    assert {tuple(map(float, x)) for x in pts} >= {(6.0, 7.0), (10.0, 9.0), (2.0, 3.0)}


def test_start_slice_panel_empty_masks_and_no_points():
    fig, ax = plt.subplots()
    p = _panel(gt_empty=True, pred_empty=True)
    F.start_slice_panel(ax, p["image"], p["gt_image"], p["pred_image"], np.zeros((0, 2)), np.zeros(0), "t")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["ground truth (empty)", "prediction (empty)"]
    fig.canvas.draw()


def test_start_slice_panel_checks_shapes():
    fig, ax = plt.subplots()
    p = _panel()
    with pytest.raises(ValueError, match="shape"):
        F.start_slice_panel(ax, p["image"], p["gt_image"][:5], p["pred_image"], p["points"], p["labels"], "t")
    with pytest.raises(ValueError, match="labels"):
        F.start_slice_panel(ax, p["image"], p["gt_image"], p["pred_image"], p["points"], [1], "t")


def test_case_figure_layout_and_titles():
    gt = _blob((6, 5, 4), (3, 3, 2))
    panels = [_panel("caudal (Dice 0.924)"), _panel("cranial (Dice 0.360)", pred_empty=True)]
    renders = [
        {"mask": gt, "spacing": SPACING, "title": "ground truth", "color": F.RENDER_GT_COLOR},
        {"mask": _blob((6, 5, 4), (3, 2, 2)), "spacing": SPACING, "title": "caudal (Dice 0.924)"},
        {"mask": np.zeros_like(gt), "spacing": SPACING, "title": "cranial (Dice 0.360)"},
    ]
    fig = F.case_figure(panels, renders, STAMPED)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 5
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "caudal (Dice 0.924)", "cranial (Dice 0.360)", "ground truth", "caudal (Dice 0.924)", "cranial (Dice 0.360)",
    ]  # fmt: skip
    assert [ax.name for ax in fig.axes] == ["rectilinear", "rectilinear", "3d", "3d", "3d"]
    assert RANDOM_WEIGHTS_STAMP in fig._suptitle.get_text()
    assert "empty" in _texts(fig.axes[-1])
    fig.canvas.draw()


def test_case_figure_renders_only():
    fig = F.case_figure([], [{"mask": _blob((6, 5, 4), (3, 3, 2)), "spacing": SPACING, "title": "gt"}], "t")
    assert len(fig.axes) == 1
    with pytest.raises(ValueError):
        F.case_figure([], [], "t")


# -- load_case: a tiny dataset and run folder ------------------------------------------


def _lps(data: np.ndarray, spacing) -> nib.Nifti1Image:
    """A canonical RAS array stored as an LPS file (as many CT files are)."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [(data.shape[0] - 1) * spacing[0], (data.shape[1] - 1) * spacing[1], 0.0]
    return nib.Nifti1Image(np.ascontiguousarray(data[::-1, ::-1, :]), affine)


@pytest.fixture
def fake_run(tmp_path):
    rng = np.random.default_rng(0)
    ct = rng.integers(-200, 300, size=SHAPE).astype(np.int16)
    ct[0, 0, 0], ct[1, 0, 0] = -1000, 1000  # reach both window limits
    gt = _blob((8, 6, 4), (3, 2.5, 2.5))  # towards the patient's right and front
    pred = _blob((8, 6, 4), (2.5, 2.5, 2.5))
    root = tmp_path / "dataset"
    ct_file, gt_file = image_path(root, "s0001"), mask_path(root, "s0001", "liver")
    gt_file.parent.mkdir(parents=True)
    nib.save(_lps(ct, SPACING), ct_file)
    nib.save(_lps(gt.astype(np.uint8), SPACING), gt_file)
    layout = RunLayout(tmp_path / "outputs" / "run", tmp_path / "reports" / "run")
    pred_path = layout.predictions_dir / "s0001" / "liver__caudal__neg.nii.gz"
    pred_path.parent.mkdir(parents=True)
    nib.save(to_original(load_volume(ct_file), pred.astype(np.uint8)), pred_path)  # as the grid writes it
    prompts = {"points": [[3.0, 4.0], [2.0, 5.0]], "labels": [1, 0]}
    row = {
        "scan_id": "s0001", "organ": "liver", "approach": "caudal", "negatives": True, "start_slice": 4,
        "prompts": json.dumps(prompts), "pred_path": str(pred_path.relative_to(layout.run_dir)), "status": "ok",
    }  # fmt: skip
    (pred_path.parent / "liver__caudal__neg.json").write_text(json.dumps(row))
    return {"layout": layout, "root": root, "ct": ct, "gt": gt, "pred": pred, "prompts": prompts}


def test_load_case_end_to_end(fake_run):
    case = load_case(fake_run["layout"], fake_run["root"], "s0001", "liver", "caudal", True, 50, 400)
    assert case["gt"].dtype == bool and case["pred"].dtype == bool
    np.testing.assert_array_equal(case["gt"], fake_run["gt"])  # back in canonical RAS
    np.testing.assert_array_equal(case["pred"], fake_run["pred"])
    assert case["spacing"] == pytest.approx(SPACING)
    assert case["start_slice"] == 4
    expected = slice_to_image(window_to_uint8(fake_run["ct"], 50, 400)[:, :, 4])
    np.testing.assert_array_equal(case["image"], expected)
    assert case["image"].dtype == np.uint8 and case["image"].shape == (SHAPE[1], SHAPE[0])
    np.testing.assert_array_equal(case["gt_image"], slice_to_image(fake_run["gt"][:, :, 4]))
    np.testing.assert_array_equal(case["pred_image"], slice_to_image(fake_run["pred"][:, :, 4]))
    # the organ lies towards the patient's right and front: image left and top
    rows, cols = np.nonzero(case["gt_image"])
    assert cols.mean() < SHAPE[0] / 2 and rows.mean() < SHAPE[1] / 2
    np.testing.assert_array_equal(case["points"], fake_run["prompts"]["points"])
    np.testing.assert_array_equal(case["labels"], fake_run["prompts"]["labels"])
    assert case["dice"] == pytest.approx(dice(fake_run["pred"], fake_run["gt"]))
    # the loaded case feeds the figures directly
    fig = F.case_figure(
        [{**{k: case[k] for k in ("image", "gt_image", "pred_image", "points", "labels")}, "title": "caudal"}],
        [{"mask": case["gt"], "spacing": case["spacing"], "title": "gt"},
         {"mask": case["pred"], "spacing": case["spacing"], "title": f"Dice {case['dice']:.3f}"}],
        "t",
    )  # fmt: skip
    assert len(fig.axes) == 3
    fig = F.best_cases_3d([case], "t")
    assert "Dice" in fig.axes[0].get_title()


def test_load_case_missing_run(fake_run):
    with pytest.raises(FileNotFoundError, match="no finished run"):
        load_case(fake_run["layout"], fake_run["root"], "s0001", "liver", "cranial", True, 50, 400)


# -- choosing the cases ------------------------------------------------------------------


def _metrics() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scan_id": ["a", "b", "c", "a", "b", "c", "a"],
            "organ": ["liver"] * 6 + ["spleen"],
            "approach": ["caudal"] * 3 + ["cranial"] * 3 + ["caudal"],
            "negatives": [True] * 7,
            "dice": [0.9, 0.95, 0.5, 0.3, 0.9, np.nan, np.nan],
        }
    )


def test_best_case_per_organ():
    best = best_case_per_organ(_metrics(), ["liver", "spleen"])
    assert best.to_dict("records") == [{"organ": "liver", "scan_id": "b", "dice": 0.95}]  # spleen: no finite Dice
    excl = pd.DataFrame({"scan_id": ["b"], "organ": ["liver"]})
    assert best_case_per_organ(_metrics(), ["liver"], exclude=excl)["scan_id"].tolist() == ["a"]


def test_largest_difference():
    row = largest_difference(_metrics(), "liver")
    assert row["scan_id"] == "a" and row["difference"] == pytest.approx(0.6)
    assert largest_difference(_metrics(), "spleen") is None
