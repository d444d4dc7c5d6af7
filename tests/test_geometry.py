"""Tests of helpers.geometry: the study's percentile definition, geometry tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.geometry import area_table, organ_geometry, percentile_slice, slice_area, start_slices, volume_table

LEVELS = {"caudal": 25.0, "mid": 50.0, "cranial": 75.0}


def _mask_with_areas(areas: dict[int, int], shape=(10, 10, 12)) -> np.ndarray:
    """A mask whose slice z holds exactly ``areas[z]`` voxels."""
    m = np.zeros(shape, bool)
    for z, a in areas.items():
        m[:, :, z].flat[:a] = True
    return m


def _voxel_z(mask: np.ndarray) -> np.ndarray:
    return np.nonzero(mask)[2]


def test_percentile_slice_weights_slices_by_area():
    # Slices 2..5 with areas 1, 1, 1, 97: 97 % of the voxels are on slice 5.
    mask = _mask_with_areas({2: 1, 3: 1, 4: 1, 5: 97})
    assert percentile_slice(mask, 25) == 5  # an unweighted slice list would give 2 or 3
    assert percentile_slice(mask, 0) == 2
    assert percentile_slice(mask, 1) == 2  # rank 0.99 -> voxel 0
    assert percentile_slice(mask, 2) == 3  # rank 1.98 -> voxel 1
    assert percentile_slice(mask, 100) == 5


def test_percentile_slice_hand_computed():
    # z list: [1]*4 + [2]*2 + [3]*4 -> n = 10, rank = q/100 * 9
    mask = _mask_with_areas({1: 4, 2: 2, 3: 4})
    assert percentile_slice(mask, 25) == 1  # rank 2.25 -> z[2] = 1
    assert percentile_slice(mask, 50) == 2  # rank 4.5  -> z[4] = 2
    assert percentile_slice(mask, 66) == 2  # rank 5.94 -> z[5] = 2
    assert percentile_slice(mask, 67) == 3  # rank 6.03 -> z[6] = 3
    assert percentile_slice(mask, 75) == 3


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("q", [0, 10, 25, 33.3, 50, 66.7, 75, 90, 100])
def test_percentile_slice_matches_definition(seed, q):
    rng = np.random.default_rng(seed)
    # Non-contiguous organ: random areas on a random subset of slices.
    zs = np.sort(rng.choice(12, size=rng.integers(1, 8), replace=False))
    mask = _mask_with_areas({int(z): int(rng.integers(1, 60)) for z in zs})
    expected = int(np.percentile(_voxel_z(mask), q, method="lower"))
    got = percentile_slice(mask, q)
    assert got == expected
    assert isinstance(got, int)
    assert mask[:, :, got].any()  # always a slice containing the organ


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("q", [0, 10, 25, 33.3, 50, 66.7, 75, 90, 100])
def test_percentile_slice_equals_truncated_linear_for_contiguous_organs(seed, q):
    rng = np.random.default_rng(100 + seed)
    z0 = int(rng.integers(0, 5))
    n = int(rng.integers(1, 7))
    mask = _mask_with_areas({z: int(rng.integers(1, 80)) for z in range(z0, z0 + n)})
    assert percentile_slice(mask, q) == int(np.percentile(_voxel_z(mask), q))


def test_percentile_slice_lands_inside_organ_with_gap():
    # Two blocks far apart; linear interpolation would fall into the gap.
    mask = _mask_with_areas({1: 50, 10: 50})
    assert int(np.percentile(_voxel_z(mask), 50)) not in (1, 10)  # the case the definition avoids
    assert percentile_slice(mask, 50) in (1, 10)
    assert percentile_slice(mask, 50) == 1


def test_percentile_slice_accepts_non_bool_masks():
    mask = _mask_with_areas({3: 5, 4: 5}).astype(np.uint8) * 7
    assert percentile_slice(mask, 75) == 4


def test_percentile_slice_empty_mask_raises():
    with pytest.raises(ValueError, match="empty"):
        percentile_slice(np.zeros((3, 3, 3), bool), 50)


@pytest.mark.parametrize("q", [-0.1, 100.1, 150])
def test_percentile_slice_q_out_of_range_raises(q):
    with pytest.raises(ValueError, match="percentile"):
        percentile_slice(_mask_with_areas({1: 1}), q)


def test_start_slices_and_slice_area():
    mask = _mask_with_areas({2: 10, 3: 20, 4: 30, 5: 40})  # n = 100, z ranks
    # z[24] = 3 (10 voxels on 2, 20 on 3), z[49] = 4, z[74] = 5
    assert start_slices(mask, LEVELS) == {"caudal": 3, "mid": 4, "cranial": 5}
    assert slice_area(mask, 4) == 30
    assert slice_area(mask, 0) == 0


def test_organ_geometry():
    mask = _mask_with_areas({2: 10, 3: 20, 4: 30, 5: 40})
    g = organ_geometry(mask.astype(np.uint8), LEVELS)
    assert g == {
        "volume_voxels": 100,
        "z_min": 2,
        "z_max": 5,
        "z_caudal": 3,
        "area_caudal": 20,
        "z_mid": 4,
        "area_mid": 30,
        "z_cranial": 5,
        "area_cranial": 40,
    }


@pytest.fixture
def geometry() -> pd.DataFrame:
    rows = [
        {"scan_id": "s1", "organ": "liver", "volume_voxels": 1000, "area_caudal": 10, "area_mid": 20, "area_cranial": 30},
        {"scan_id": "s2", "organ": "liver", "volume_voxels": 2000, "area_caudal": 14, "area_mid": 40, "area_cranial": 30},
        {"scan_id": "s3", "organ": "liver", "volume_voxels": 4500, "area_caudal": 18, "area_mid": 60, "area_cranial": 30},
        {"scan_id": "s1", "organ": "spleen", "volume_voxels": 300, "area_caudal": 5, "area_mid": 6, "area_cranial": 7},
    ]
    return pd.DataFrame(rows)


def test_volume_table(geometry):
    t = volume_table(geometry, ["spleen", "liver", "pancreas"])
    assert list(t["organ"]) == ["spleen", "liver", "pancreas"]  # requested order, absent organ kept
    liver = t.set_index("organ").loc["liver"]
    assert liver["mean_voxels"] == pytest.approx(2500.0)
    assert liver["sd_voxels"] == pytest.approx(np.std([1000, 2000, 4500], ddof=1))
    assert (liver["min_voxels"], liver["max_voxels"], liver["n"]) == (1000, 4500, 3)
    spleen = t.set_index("organ").loc["spleen"]
    assert spleen["mean_voxels"] == 300 and np.isnan(spleen["sd_voxels"]) and spleen["n"] == 1
    pancreas = t.set_index("organ").loc["pancreas"]
    assert np.isnan(pancreas["mean_voxels"])


def test_area_table(geometry):
    t = area_table(geometry, ["liver", "spleen", "pancreas"], LEVELS)
    assert list(t.columns) == ["organ", "level", "mean_area", "sd_area", "n"]
    assert len(t) == 3 * 3
    assert list(t["level"][:3]) == ["caudal", "mid", "cranial"]
    r = t.set_index(["organ", "level"])
    assert r.loc[("liver", "caudal"), "mean_area"] == pytest.approx(14.0)
    assert r.loc[("liver", "caudal"), "sd_area"] == pytest.approx(4.0)
    assert r.loc[("liver", "mid"), "mean_area"] == pytest.approx(40.0)
    assert r.loc[("liver", "mid"), "sd_area"] == pytest.approx(20.0)
    assert r.loc[("liver", "cranial"), "sd_area"] == pytest.approx(0.0)
    assert r.loc[("liver", "mid"), "n"] == 3
    assert r.loc[("spleen", "mid"), "mean_area"] == 6 and np.isnan(r.loc[("spleen", "mid"), "sd_area"])
    assert r.loc[("pancreas", "caudal"), "n"] == 0 and np.isnan(r.loc[("pancreas", "caudal"), "mean_area"])
