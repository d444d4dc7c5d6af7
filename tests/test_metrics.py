"""Tests of helpers.metrics against hand-computed values and a brute-force reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from helpers.metrics import case_metrics, dice, hd95, normalized_surface_dice

SHAPE = (10, 10, 10)


def _box(lo: tuple[int, int, int], hi: tuple[int, int, int], shape=SHAPE) -> np.ndarray:
    """Boolean mask that is True on the half-open box [lo, hi)."""
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


def _brute_surface_points(mask: np.ndarray) -> np.ndarray:
    """Indices of voxels with a background one among their 26 neighbours (outside: background)."""
    padded = np.pad(mask, 1, constant_values=False)
    has_background_neighbour = np.zeros_like(mask)
    n0, n1, n2 = mask.shape
    for d0, d1, d2 in itertools.product((-1, 0, 1), repeat=3):
        shifted = padded[1 + d0 : 1 + d0 + n0, 1 + d1 : 1 + d1 + n1, 1 + d2 : 1 + d2 + n2]
        has_background_neighbour |= ~shifted
    return np.argwhere(mask & has_background_neighbour)


def _brute_directed(pred: np.ndarray, gt: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm) by exhaustive pairwise distances."""
    sp = np.asarray(spacing, dtype=float)
    dist = cdist(_brute_surface_points(pred) * sp, _brute_surface_points(gt) * sp)
    return dist.min(axis=1), dist.min(axis=0)


def _blob(rng: np.random.Generator, shape=(12, 11, 9)) -> np.ndarray:
    """Random union of boxes, touching the array border at least once."""
    mask = np.zeros(shape, dtype=bool)
    mask[0:3, 0:4, 2:5] = True  # touches the border
    for _ in range(3):
        lo = [int(rng.integers(0, s - 3)) for s in shape]
        hi = [lo_i + int(rng.integers(2, 5)) for lo_i in lo]
        mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


# ---------------------------------------------------------------- dice


def test_dice_of_overlapping_cubes():
    a = _box((2, 2, 2), (6, 6, 6))  # 64 voxels
    b = _box((4, 2, 2), (8, 6, 6))  # 64 voxels, 32 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, _box((7, 7, 7), (9, 9, 9))) == 0.0


def test_dice_accepts_integer_masks():
    a = _box((2, 2, 2), (6, 6, 6)).astype(np.uint8)
    b = _box((4, 2, 2), (8, 6, 6)).astype(np.uint8) * 3
    assert dice(a, b) == pytest.approx(0.5)


def test_dice_empty_masks():
    gt = _box((2, 2, 2), (4, 4, 4))
    empty = np.zeros(SHAPE, dtype=bool)
    assert dice(empty, gt) == 0.0
    assert math.isnan(dice(empty, empty))


def test_dice_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 3, 3\).*\(3, 3, 4\)"):
        dice(np.ones((3, 3, 3), bool), np.ones((3, 3, 4), bool))


def test_dice_rejects_2d():
    with pytest.raises(ValueError, match="3D"):
        dice(np.ones((3, 3), bool), np.ones((3, 3), bool))


# ---------------------------------------------------------------- hd95


def test_hd95_identical_is_zero():
    a = _box((2, 3, 1), (7, 6, 8))
    assert hd95(a, a, (1.0, 2.0, 3.0)) == 0.0


def test_hd95_parallel_plates_anisotropic():
    # Two one-voxel-thick full plates 4 voxels apart along axis 0: every surface
    # voxel is 4 * 0.5 mm from the other plate. A swapped axis would give 2.8 or 12.
    pred = np.zeros(SHAPE, dtype=bool)
    gt = np.zeros(SHAPE, dtype=bool)
    pred[2] = True
    gt[6] = True
    assert hd95(pred, gt, (0.5, 0.7, 3.0)) == pytest.approx(2.0)


def test_hd95_single_voxels():
    pred = _box((5, 5, 2), (6, 6, 3))
    gt = _box((5, 5, 5), (6, 6, 6))
    assert hd95(pred, gt, (1.0, 1.0, 2.5)) == pytest.approx(7.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_matches_brute_force_pooled(seed):
    rng = np.random.default_rng(seed)
    pred, gt = _blob(rng), _blob(rng)
    spacing = (0.8, 1.5, 2.5)
    d_pg, d_gp = _brute_directed(pred, gt, spacing)
    expected = np.percentile(np.concatenate([d_pg, d_gp]), 95)
    assert hd95(pred, gt, spacing) == pytest.approx(expected)


def test_hd95_pools_both_directions_not_max_of_directed():
    # gt: 4x4x4 cube (56 surface voxels). pred: the same cube plus a far 1x2x2 plate.
    # pred -> gt: 56 zeros + 4 far (6.7 % > 5 %): its own 95th percentile is large.
    # Pooled with gt -> pred (56 zeros): 4 far of 116 (3.4 % < 5 %) -> 0.
    gt = _box((1, 1, 1), (5, 5, 5), shape=(16, 8, 8))
    pred = gt | _box((14, 1, 1), (15, 3, 3), shape=(16, 8, 8))
    d_pg, _ = _brute_directed(pred, gt, (1, 1, 1))
    assert np.percentile(d_pg, 95) > 5  # the MONAI-style (max of directed) value
    assert hd95(pred, gt, (1, 1, 1)) == 0.0


def test_hd95_empty_is_nan():
    gt = _box((2, 2, 2), (4, 4, 4))
    empty = np.zeros(SHAPE, dtype=bool)
    assert math.isnan(hd95(empty, gt, (1, 1, 1)))
    assert math.isnan(hd95(gt, empty, (1, 1, 1)))


def test_hd95_bad_spacing():
    a = _box((2, 2, 2), (4, 4, 4))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, (1.0, 0.0, 1.0))


# ---------------------------------------------------------------- NSD


def test_nsd_identical_at_zero_tolerance():
    a = _box((2, 3, 1), (7, 6, 8))
    assert normalized_surface_dice(a, a, (1.0, 2.0, 3.0), 0.0) == 1.0


def test_surface_uses_full_3d_connectivity():
    # pred: 3x3x3 cube minus one corner. Its centre has only a diagonal background
    # neighbour, so it is a surface voxel with 26-connectivity (not with 6). gt is
    # that centre voxel alone: at tolerance 0 both surfaces match there only,
    # NSD = (1 + 1) / (26 + 1).
    pred = _box((2, 2, 2), (5, 5, 5), shape=(7, 7, 7))
    pred[2, 2, 2] = False
    gt = _box((3, 3, 3), (4, 4, 4), shape=(7, 7, 7))
    assert normalized_surface_dice(pred, gt, (1, 1, 1), 0.0) == pytest.approx(2 / 27)


def test_nsd_plates_threshold():
    pred = np.zeros(SHAPE, dtype=bool)
    gt = np.zeros(SHAPE, dtype=bool)
    pred[2] = True
    gt[6] = True  # all surface voxels exactly 2.0 mm apart
    spacing = (0.5, 0.7, 3.0)
    assert normalized_surface_dice(pred, gt, spacing, 1.99) == 0.0
    assert normalized_surface_dice(pred, gt, spacing, 2.0) == 1.0
    assert normalized_surface_dice(pred, gt, spacing, 1000.0) == 1.0


def test_nsd_shifted_cubes_hand_computed():
    # a = [2,6)^3 and b = a shifted by one voxel along axis 0 (isotropic 1 mm).
    # Each surface has 64 - 8 = 56 voxels (the 2x2x2 core is interior). At
    # tolerance 0 a voxel matches only when it lies on both surfaces: in the three
    # shared slabs x = 3, 4, 5 that is the 12-voxel ring (y or z in {2, 5}) of each
    # slab, 36 voxels; a core column voxel is on a's surface only at x = 5 and on
    # b's only at x = 3, so never on both. NSD = (36 + 36) / (56 + 56) = 9 / 14.
    a = _box((2, 2, 2), (6, 6, 6))
    b = _box((3, 2, 2), (7, 6, 6))
    assert normalized_surface_dice(a, b, (1, 1, 1), 0.0) == pytest.approx(9 / 14)
    assert normalized_surface_dice(a, b, (1, 1, 1), 1.0) == 1.0


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.5, 4.0])
def test_nsd_matches_brute_force(tolerance):
    rng = np.random.default_rng(7)
    pred, gt = _blob(rng), _blob(rng)
    spacing = (0.8, 1.5, 2.5)
    d_pg, d_gp = _brute_directed(pred, gt, spacing)
    expected = (np.sum(d_pg <= tolerance) + np.sum(d_gp <= tolerance)) / (d_pg.size + d_gp.size)
    assert normalized_surface_dice(pred, gt, spacing, tolerance) == pytest.approx(expected)


def test_nsd_empty_masks():
    gt = _box((2, 2, 2), (4, 4, 4))
    empty = np.zeros(SHAPE, dtype=bool)
    assert normalized_surface_dice(empty, gt, (1, 1, 1), 2.0) == 0.0
    assert math.isnan(normalized_surface_dice(empty, empty, (1, 1, 1), 2.0))


def test_nsd_negative_tolerance():
    a = _box((2, 2, 2), (4, 4, 4))
    with pytest.raises(ValueError, match="tolerance"):
        normalized_surface_dice(a, a, (1, 1, 1), -1.0)


# ---------------------------------------------------------------- case_metrics


def test_case_metrics_agrees_with_single_metrics():
    rng = np.random.default_rng(3)
    pred, gt = _blob(rng), _blob(rng)
    spacing, tol = (0.8, 1.5, 2.5), 2.0
    out = case_metrics(pred, gt, spacing, tol)
    assert set(out) == {"dice", "nsd", "hd95_mm", "pred_voxels", "gt_voxels"}
    assert out["dice"] == dice(pred, gt)
    assert out["nsd"] == normalized_surface_dice(pred, gt, spacing, tol)
    assert out["hd95_mm"] == hd95(pred, gt, spacing)
    assert out["pred_voxels"] == int(pred.sum())
    assert out["gt_voxels"] == int(gt.sum())


def test_case_metrics_empty_prediction():
    gt = _box((2, 2, 2), (4, 4, 4))
    out = case_metrics(np.zeros(SHAPE, bool), gt, (1, 1, 1), 1.0)
    assert out["dice"] == 0.0
    assert out["nsd"] == 0.0
    assert math.isnan(out["hd95_mm"])
    assert (out["pred_voxels"], out["gt_voxels"]) == (0, 8)
    both_empty = case_metrics(np.zeros(SHAPE, bool), np.zeros(SHAPE, bool), (1, 1, 1), 1.0)
    assert math.isnan(both_empty["dice"]) and math.isnan(both_empty["nsd"])
