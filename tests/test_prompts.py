"""The paper's automatic prompts, against their definition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from helpers.geometry import percentile_slice
from helpers.params import LEVELS
from helpers.prompts import Prompts, prompt_rng, ring, sample_prompts
from helpers.volumes import slice_to_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "totalsegmentator-example"


def square(size: int = 21, lo: int = 8, hi: int = 13) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[lo:hi, lo:hi] = True
    return m


def draw(mask, n_pos=5, n_neg=5, seed=0, key=("s", "liver", "caudal")):
    return sample_prompts(
        mask, n_positive=n_pos, n_negative=n_neg, min_distance=2, max_distance=3, rng=prompt_rng(seed, *key)
    )


def test_ring_is_two_to_three_voxels_out_excluding_the_margin():
    m = square()
    r = ring(m, 2, 3)
    # Along a row through the middle: mask 8..12; col 7 and 13 are the 1-voxel margin.
    row = r[10]
    assert not row[7] and not row[13]
    assert row[6] and row[5] and row[14] and row[15]
    assert not row[4] and not row[16]
    # Diagonal neighbour of the corner (distance sqrt 2) is margin; (2, 2) away (2.83) is in the ring.
    assert not r[7, 7] and r[6, 6]
    # (3, 1) away from the corner: sqrt(10) > 3, outside.
    assert not r[5, 7]
    assert not (r & m).any()
    d = ndimage.distance_transform_edt(~m)
    assert np.array_equal(r, (d >= 2) & (d <= 3))


def test_positive_points_inside_negative_points_in_ring():
    m = square()
    p = draw(m)
    assert p.n_positive == 5 and p.n_negative == 5
    r = ring(m, 2, 3)
    for (x, y), lab in zip(p.points.astype(int), p.labels):
        assert (m if lab == 1 else r)[y, x], "points are (x, y) = (column, row)"
    # no duplicates
    assert len({tuple(pt) for pt in p.points.tolist()}) == 10


def test_points_use_column_row_order_on_a_non_square_mask():
    m = np.zeros((10, 40), bool)
    m[2:4, 30:38] = True  # wide, near the right: x (column) > 29, y (row) < 4
    p = draw(m, n_neg=0)
    assert (p.points[:, 0] >= 30).all() and (p.points[:, 1] < 4).all()


def test_fewer_candidates_than_asked_takes_all_and_records_it():
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    m[4, 5] = True
    p = draw(m, n_pos=5)
    assert p.n_positive == 2
    assert p.n_negative == 5
    m2 = np.ones((5, 5), bool)  # the mask fills the slice: no ring
    p2 = draw(m2)
    assert p2.n_positive == 5 and p2.n_negative == 0


def test_seeded_and_case_specific():
    m = square(41, 10, 30)
    a, b = draw(m, seed=1), draw(m, seed=1)
    assert np.array_equal(a.points, b.points)
    assert not np.array_equal(a.points, draw(m, seed=2).points)
    assert not np.array_equal(a.points, draw(m, seed=1, key=("s", "liver", "mid")).points)


def test_ablation_keeps_the_same_positives():
    p = draw(square())
    q = p.positives_only()
    assert q.n_negative == 0
    assert np.array_equal(q.points, p.points[p.labels == 1])


def test_empty_start_slice_is_refused():
    with pytest.raises(ValueError, match="no organ pixel"):
        draw(np.zeros((5, 5), bool))


def test_json_round_trip():
    p = draw(square())
    d = json.loads(p.to_json())
    back = Prompts(np.array(d["points"], np.float32), np.array(d["labels"]))
    assert np.array_equal(back.points, p.points) and np.array_equal(back.labels, p.labels)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real sample not found at {SHARED}")
@pytest.mark.parametrize("organ", ["liver", "pancreas", "adrenal_gland_right"])
def test_prompts_on_the_real_sample(organ):
    import nibabel as nib

    from helpers.sample import V2_LABEL_IDS

    seg = nib.as_closest_canonical(nib.load(str(SHARED / "example_seg_fast_force_split.nii.gz")))
    mask = np.asarray(seg.dataobj) == V2_LABEL_IDS[organ]
    for approach, q in LEVELS.items():
        z = percentile_slice(mask, q)
        img = slice_to_image(mask[:, :, z])
        p = draw(img, key=("s0000", organ, approach))
        r = ring(img, 2, 3)
        assert p.n_positive == min(5, int(img.sum()))
        assert p.n_negative == 5
        for (x, y), lab in zip(p.points.astype(int), p.labels):
            assert (img if lab == 1 else r)[y, x]
