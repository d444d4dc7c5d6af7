"""Tests of helpers.dataset on synthetic datasets in the TotalSegmentator layout."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from helpers.dataset import (
    META_COLUMNS,
    covers_abdomen,
    image_path,
    demographics,
    inspect_mask,
    mask_path,
    normalise_study_type,
    read_meta,
    sample_per_institution,
    select,
)
from helpers.volumes import load_volume

SHAPE = (8, 8, 10)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])
ORGANS = ["liver", "spleen", "kidney_left"]
MAX_CASES = 2
MIN_VOXELS = 100


# --------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _mask(n_voxels: int, shape=SHAPE, z0: int = 2) -> np.ndarray:
    """A uint8 mask with exactly ``n_voxels`` voxels, filling slices from ``z0`` upwards."""
    m = np.zeros(shape, np.uint8)
    per_slice = shape[0] * shape[1]
    flat = m.reshape(-1, order="F")  # column-major: z is the slowest axis
    start = z0 * per_slice
    flat[start : start + n_voxels] = 1
    return flat.reshape(shape, order="F")


def _z_extent(n_voxels: int, z0: int = 2) -> tuple[int, int]:
    per_slice = SHAPE[0] * SHAPE[1]
    return z0, z0 + (n_voxels - 1) // per_slice


def _write_scan(root: Path, sid: str, masks: dict[str, np.ndarray | None], *, ct: str = "ok") -> None:
    """One scan; masks maps organ -> array (None: no file). ``ct``: 'ok' or 'corrupt'."""
    path = image_path(root, sid)
    if ct == "ok":
        rng = np.random.default_rng(sum(map(ord, sid)))
        _save(path, rng.integers(-1000, 1000, SHAPE).astype(np.int16))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)  # gzip magic, then garbage
    for organ, data in masks.items():
        if data is None:
            continue
        if isinstance(data, tuple):  # (array, affine)
            _save(mask_path(root, sid, organ), data[0], data[1])
        else:
            _save(mask_path(root, sid, organ), data)


def _write_meta(root: Path, rows: list[dict], *, bom: bool = True) -> None:
    text = "image_id;age;gender;institute;study_type;split\n" + "".join(
        f"{r['image_id']};{r.get('age', '')};{r.get('gender', '')};{r.get('institute', '')};"
        f"{r['study_type']};train\n"
        for r in rows
    )
    (root / "meta.csv").write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))


FULL = {"liver": 300, "spleen": 150, "kidney_left": 120}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Ten scans, three institutes, every selection case once.

    Institute A: four ordinary abdomen scans (more than MAX_CASES).
    Institute B: angiography, thorax (empty masks), polytrauma (liver only),
                 abdomen with a corrupt CT.
    Institute C: masks on another grid (shape / affine), too-small masks.
    """
    root = tmp_path_factory.mktemp("ts")
    rows = []
    for k in range(4):
        sid = f"a{k:02d}"
        _write_scan(root, sid, {o: _mask(n) for o, n in FULL.items()})
        rows.append({"image_id": sid, "age": 60, "gender": "M", "institute": "A", "study_type": "  CT  Abdomen-Pelvis "})
    _write_scan(root, "b01", {o: _mask(n) for o, n in FULL.items()})
    rows.append({"image_id": "b01", "age": 30, "gender": "m", "institute": "B", "study_type": "ct angiography abdomen"})
    _write_scan(root, "b02", {o: np.zeros(SHAPE, np.uint8) for o in ORGANS})
    rows.append({"image_id": "b02", "age": 70, "gender": "f", "institute": "B", "study_type": "ct thorax"})
    _write_scan(root, "b03", {"liver": _mask(300), "spleen": np.zeros(SHAPE, np.uint8), "kidney_left": None})
    rows.append({"image_id": "b03", "age": 40, "gender": "F", "institute": "B", "study_type": "CT Polytrauma"})
    _write_scan(root, "b04", {o: _mask(n) for o, n in FULL.items()}, ct="corrupt")
    rows.append({"image_id": "b04", "age": 80, "gender": "m", "institute": "B", "study_type": "ct abdomen"})
    _write_scan(
        root,
        "c01",
        {"liver": _mask(300, shape=(8, 8, 11)), "spleen": _mask(50), "kidney_left": _mask(MIN_VOXELS)},
    )
    rows.append({"image_id": "c01", "age": 50, "gender": " f ", "institute": " C ", "study_type": "CT ABDOMEN"})
    shifted = AFFINE.copy()
    shifted[:3, 3] = [0.0, 0.0, 5.0]
    _write_scan(
        root,
        "c02",
        {"liver": (_mask(300), shifted), "spleen": _mask(150), "kidney_left": _mask(MIN_VOXELS + 1)},
    )
    rows.append({"image_id": "c02", "age": "", "gender": "", "institute": "C", "study_type": "ct abdomen"})
    _write_meta(root, rows)
    return root


@pytest.fixture(scope="module")
def selection(dataset):
    return select(
        dataset, ORGANS, max_cases_per_institution=MAX_CASES, min_mask_voxels=MIN_VOXELS, seed=0, progress=False
    )


# --------------------------------------------------------------------------
# read_meta
# --------------------------------------------------------------------------


def test_normalise_study_type():
    assert normalise_study_type("  CT  Abdomen-Pelvis ") == "ct abdomen-pelvis"
    assert normalise_study_type("CT\tThorax\n") == "ct thorax"
    assert normalise_study_type(float("nan")) == ""
    assert normalise_study_type(None) == ""


def test_read_meta_normalises(dataset):
    meta = read_meta(dataset)
    assert list(meta.columns[: len(META_COLUMNS)]) == list(META_COLUMNS)  # BOM stripped from 'image_id'
    assert len(meta) == 10
    assert list(meta.index) == list(range(10))
    row = meta.set_index("image_id")
    assert row.loc["a00", "study_type"] == "ct abdomen-pelvis"
    assert row.loc["b03", "study_type"] == "ct polytrauma"
    assert row.loc["c01", "study_type"] == "ct abdomen"
    assert row.loc["c01", "institute"] == "C"  # stripped
    assert row.loc["c01", "gender"] == "f"
    assert row.loc["a00", "gender"] == "m"
    assert row.loc["c02", "gender"] == ""
    assert np.isnan(row.loc["c02", "age"])
    assert row.loc["a00", "age"] == 60
    assert all(isinstance(x, str) for x in meta["image_id"])
    assert all(isinstance(x, str) for x in meta["institute"])


def test_read_meta_keeps_leading_zero_ids_and_fills_institute(tmp_path):
    (tmp_path / "meta.csv").write_text(
        "image_id;age;gender;institute;study_type\n0001;n/a;M;;ct abdomen\n0002;45;F;7;ct thorax\n",
        encoding="utf-8",
    )
    meta = read_meta(tmp_path)
    assert list(meta["image_id"]) == ["0001", "0002"]
    assert list(meta["institute"]) == ["unknown", "7"]
    assert np.isnan(meta.loc[0, "age"]) and meta.loc[1, "age"] == 45


def test_read_meta_all_empty_gender_column_without_warning(tmp_path):
    import warnings

    (tmp_path / "meta.csv").write_text("image_id;age;gender;institute;study_type\ns1;;;A;ct abdomen\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = read_meta(tmp_path)
    assert meta.loc[0, "gender"] == ""


def test_read_meta_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.csv"):
        read_meta(tmp_path)


def test_read_meta_missing_column_names_file(tmp_path):
    (tmp_path / "meta.csv").write_text("image_id;age;gender;study_type\ns1;3;m;ct\n")
    with pytest.raises(ValueError, match="institute") as info:
        read_meta(tmp_path)
    assert str(tmp_path / "meta.csv") in str(info.value)


def test_read_meta_comma_separated_is_rejected(tmp_path):
    (tmp_path / "meta.csv").write_text("image_id,age,gender,institute,study_type\ns1,3,m,A,ct\n")
    with pytest.raises(ValueError, match="meta.csv"):
        read_meta(tmp_path)


# --------------------------------------------------------------------------
# inspect_mask / covers_abdomen
# --------------------------------------------------------------------------


def test_inspect_mask_statuses(dataset):
    ct = load_volume(image_path(dataset, "c01"))
    present = inspect_mask(mask_path(dataset, "a00", "liver"), MIN_VOXELS)
    assert (present.status, present.n_voxels, present.reason) == ("present", 300, "")
    assert (present.z_min, present.z_max) == _z_extent(300)
    small = inspect_mask(mask_path(dataset, "c01", "spleen"), MIN_VOXELS, ct=ct)
    assert (small.status, small.n_voxels) == ("too_small", 50)
    assert (small.z_min, small.z_max) == _z_extent(50)
    edge = inspect_mask(mask_path(dataset, "c01", "kidney_left"), MIN_VOXELS, ct=ct)
    assert edge.status == "too_small"  # exactly min_mask_voxels is excluded
    empty = inspect_mask(mask_path(dataset, "b03", "spleen"), MIN_VOXELS)
    assert (empty.status, empty.n_voxels, empty.z_min) == ("empty", 0, None)
    missing = inspect_mask(mask_path(dataset, "b03", "kidney_left"), MIN_VOXELS)
    assert missing.status == "missing" and "kidney_left.nii.gz" in missing.reason
    other_grid = inspect_mask(mask_path(dataset, "c01", "liver"), MIN_VOXELS, ct=ct)
    assert other_grid.status == "unreadable" and "liver.nii.gz" in other_grid.reason
    # Without a CT to compare with, the same file is readable.
    assert inspect_mask(mask_path(dataset, "c01", "liver"), MIN_VOXELS).status == "present"


def test_inspect_mask_does_not_raise_for_corrupt_file(tmp_path):
    p = tmp_path / "liver.nii.gz"
    p.write_bytes(b"not a nifti")
    info = inspect_mask(p, MIN_VOXELS)
    assert info.status == "unreadable" and "liver.nii.gz" in info.reason


def test_covers_abdomen(dataset):
    assert covers_abdomen(dataset, "b02", "ct thorax", ORGANS) is False  # all masks empty
    assert covers_abdomen(dataset, "b03", "ct polytrauma", ORGANS) is True  # liver non-empty
    assert covers_abdomen(dataset, "b02", "ct abdomen", ORGANS) is True  # study type suffices
    assert covers_abdomen(dataset, "b02", "ct thorax-abdominal", ORGANS) is True  # 'abdom' suffices
    # A too-small but non-empty mask still shows the abdomen.
    assert covers_abdomen(dataset, "c01", "ct whole body", ["spleen"]) is True


# --------------------------------------------------------------------------
# sample_per_institution
# --------------------------------------------------------------------------


def _scan_list() -> pd.DataFrame:
    rows = [{"image_id": f"x{k:02d}", "institute": "X"} for k in range(12)]
    rows += [{"image_id": f"y{k:02d}", "institute": "Y"} for k in range(3)]
    rows += [{"image_id": f"z{k:02d}", "institute": "Z"} for k in range(5)]
    return pd.DataFrame(rows)


def test_sample_per_institution_caps_and_keeps_small_institutes():
    picked = sample_per_institution(_scan_list(), 4, seed=0)
    counts = picked["institute"].value_counts().to_dict()
    assert counts == {"X": 4, "Y": 3, "Z": 4}
    assert set(picked.loc[picked["institute"] == "Y", "image_id"]) == {"y00", "y01", "y02"}
    assert list(picked["image_id"]) == sorted(picked["image_id"])
    assert list(picked.index) == list(range(len(picked)))
    assert not picked["image_id"].duplicated().any()


def test_sample_per_institution_is_deterministic_and_order_independent():
    scans = _scan_list()
    a = sample_per_institution(scans, 4, seed=7)
    b = sample_per_institution(scans, 4, seed=7)
    shuffled = scans.sample(frac=1.0, random_state=123).reset_index(drop=True)
    c = sample_per_institution(shuffled, 4, seed=7)
    assert list(a["image_id"]) == list(b["image_id"]) == list(c["image_id"])


def test_sample_per_institution_seed_matters():
    scans = _scan_list()
    draws = {tuple(sample_per_institution(scans, 4, seed=s)["image_id"]) for s in range(6)}
    assert len(draws) > 1


def test_sample_per_institution_all_kept_when_fewer():
    scans = _scan_list()
    picked = sample_per_institution(scans, 100, seed=3)
    assert sorted(picked["image_id"]) == sorted(scans["image_id"])


def test_sample_per_institution_empty():
    empty = _scan_list().iloc[0:0]
    assert len(sample_per_institution(empty, 3, seed=0)) == 0


# --------------------------------------------------------------------------
# select: statuses, manifest, flow table
# --------------------------------------------------------------------------


def test_select_scan_statuses(selection):
    st = selection.scans.set_index("image_id")["status"].to_dict()
    assert st["b01"] == "angiography"
    assert st["b02"] == "not abdomen"
    assert st["b03"] == "selected"
    assert st["b04"] == "unreadable CT"
    assert st["c01"] == "no evaluated organ" and st["c02"] == "selected"
    a_status = sorted(st[f"a{k:02d}"] for k in range(4))
    assert a_status == ["not sampled", "not sampled", "selected", "selected"]
    err = selection.scans.set_index("image_id")["ct_error"]
    assert "b04" in err["b04"] and "ct.nii.gz" in err["b04"]
    assert (err.drop("b04") == "").all()


def test_select_is_deterministic_for_a_seed(dataset, selection):
    again = select(
        dataset, ORGANS, max_cases_per_institution=MAX_CASES, min_mask_voxels=MIN_VOXELS, seed=0, progress=False
    )
    pd.testing.assert_frame_equal(again.scans, selection.scans)
    pd.testing.assert_frame_equal(again.manifest, selection.manifest)


def test_select_manifest(selection):
    man = selection.manifest
    picked_a = sorted(selection.scans.loc[selection.scans["status"].eq("selected") & selection.scans["institute"].eq("A"), "image_id"])
    assert sorted(man["scan_id"].unique()) == sorted(picked_a + ["b03", "c01", "c02"])
    assert len(man) == 5 * len(ORGANS)
    assert "b04" not in set(man["scan_id"])  # unreadable CT: skipped, others went on
    m = man.set_index(["scan_id", "organ"])
    for sid in picked_a:
        for organ, n in FULL.items():
            assert m.loc[(sid, organ), "status"] == "present"
            assert m.loc[(sid, organ), "n_voxels"] == n
            assert (m.loc[(sid, organ), "z_min"], m.loc[(sid, organ), "z_max"]) == _z_extent(n)
            assert m.loc[(sid, organ), "institute"] == "A"
    assert m.loc[("b03", "liver"), "status"] == "present"
    assert m.loc[("b03", "spleen"), "status"] == "empty"
    assert m.loc[("b03", "kidney_left"), "status"] == "missing"
    liver_c01 = m.loc[("c01", "liver")]
    assert liver_c01["status"] == "unreadable"
    assert "liver.nii.gz" in liver_c01["reason"] and "shape" in liver_c01["reason"]
    liver_c02 = m.loc[("c02", "liver")]
    assert liver_c02["status"] == "unreadable"
    assert "liver.nii.gz" in liver_c02["reason"] and "affine" in liver_c02["reason"]
    assert m.loc[("c01", "spleen"), "status"] == "too_small"
    assert m.loc[("c01", "spleen"), "n_voxels"] == 50
    assert "50" in m.loc[("c01", "spleen"), "reason"]
    assert m.loc[("c01", "kidney_left"), "status"] == "too_small"
    assert m.loc[("c02", "kidney_left"), "status"] == "present"
    assert (man["included"] == (man["status"] == "present")).all()
    assert set(man.loc[man["scan_id"] == "c01", "institute"]) == {"C"}


def test_select_flow_table(selection):
    flow = selection.flow
    assert list(flow.columns) == ["step", "count"]
    expected = [
        ("scans found", 10),
        ("covering the abdomen", 9),
        ("not CT angiography", 8),
        ("sampled (max per institution)", 6),
        ("CT readable", 5),
        ("organ masks found (non-empty)", 11),  # 6 (A) + 1 (b03) + 2 (c01) + 2 (c02)
        (f"masks excluded (<= {MIN_VOXELS} voxels)", 2),
        ("masks unreadable", 2),
        ("organ masks evaluated", 9),  # 6 (A) + 1 (b03) + 2 (c02)
        ("scans evaluated (at least one organ)", 4),  # c01 has no mask left
    ]
    assert [tuple(r) for r in flow.itertuples(index=False)] == expected
    counts = flow["count"].tolist()
    assert counts[:5] == sorted(counts[:5], reverse=True)  # scan counts only shrink


def test_select_no_scan_sampled(tmp_path):
    root = tmp_path / "ds"
    _write_scan(root, "t01", {o: np.zeros(SHAPE, np.uint8) for o in ORGANS})
    _write_meta(root, [{"image_id": "t01", "institute": "A", "study_type": "ct thorax"}], bom=False)
    sel = select(root, ORGANS, max_cases_per_institution=2, min_mask_voxels=100, seed=0, progress=False)
    assert sel.scans["status"].tolist() == ["not abdomen"]
    assert len(sel.manifest) == 0
    assert sel.flow["count"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def test_demographics(selection):
    demo = demographics(selection.scans)
    d = {(r.variable, r.level): r.value for r in demo.itertuples(index=False)}
    # Evaluated: two A scans (60, M), b03 (40, F), c02 (age and sex unknown); c01 has no
    # organ left after exclusion, so it is not described.
    assert d[("scans", "n")] == 4
    assert d[("age", "n known")] == 3
    ages = np.array([60, 60, 40], float)
    assert d[("age", "mean")] == pytest.approx(round(ages.mean(), 1))
    assert d[("age", "sd")] == pytest.approx(round(ages.std(ddof=1), 1))
    assert d[("sex", "male")] == 2
    assert d[("sex", "female")] == 1
    assert d[("sex", "unknown")] == 1
    assert d[("institute", "A")] == 2
    assert d[("institute", "B")] == 1
    assert d[("institute", "C")] == 1
    assert ("institute", "D") not in d
