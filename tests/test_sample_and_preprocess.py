"""Tests of helpers.sample (embedded one-scan sample) and helpers.preprocess (SAM 2 frames).

They read the real TotalSegmentator example files from the shared data folder
(never copied into the repository) and skip when it is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from helpers.dataset import image_path, mask_path, read_meta
from helpers.download import ChecksumError
from helpers.params import ORGANS
from helpers.preprocess import (
    FRAMES_META,
    load_scan,
    read_frames_meta,
    scan_geometry,
    slab_range,
    write_frames,
)
from helpers.sample import LABEL_SOURCE, SAMPLE_SCAN_ID, UPSTREAM_FILES, build_sample
from helpers.volumes import VolumeError, slice_to_image, window_to_uint8

MIRROR = Path(__file__).resolve().parents[1].parent / "shared/data/totalsegmentator-example"
CT_NAME = "example_ct.nii.gz"
SEG_NAME = "example_seg_fast_force_split.nii.gz"

#: Voxel counts of the eight organs in example_ct (from the data folder's README).
README_COUNTS = {
    "liver": 41692,
    "spleen": 9668,
    "kidney_right": 7134,
    "kidney_left": 5090,
    "gallbladder": 1319,
    "pancreas": 695,
    "adrenal_gland_right": 166,
    "adrenal_gland_left": 210,
}
CANONICAL_SHAPE = (122, 101, 112)
SLAB = (66, 111)
LEVEL, WIDTH, QUALITY = 50.0, 400.0, 95

pytestmark = pytest.mark.skipif(
    not all((MIRROR / name).is_file() for name in UPSTREAM_FILES),
    reason=f"shared TotalSegmentator example data not found at {MIRROR}",
)


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample") / "dataset"
    out = build_sample(root, MIRROR, progress=False)
    assert out == root
    return root


@pytest.fixture(scope="module")
def scan(sample_root):
    return load_scan(sample_root, SAMPLE_SCAN_ID, ORGANS)


@pytest.fixture(scope="module")
def frames(scan, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("run") / "frames" / SAMPLE_SCAN_ID
    meta = write_frames(scan, out_dir, level=LEVEL, width=WIDTH, quality=QUALITY)
    return out_dir, meta


# --------------------------------------------------------------------------
# build_sample
# --------------------------------------------------------------------------


def test_sample_layout(sample_root):
    assert (sample_root / "meta.csv").is_file()
    assert image_path(sample_root, SAMPLE_SCAN_ID).is_file()
    seg_dir = sample_root / SAMPLE_SCAN_ID / "segmentations"
    assert sorted(p.name for p in seg_dir.iterdir()) == sorted(f"{o}.nii.gz" for o in ORGANS)
    # Nothing else is left behind: no temporary folders, no upstream copies.
    assert sorted(p.name for p in sample_root.iterdir()) == ["meta.csv", SAMPLE_SCAN_ID]
    assert [p.name for p in sample_root.parent.iterdir()] == [sample_root.name]


def test_sample_ct_is_int16_with_upstream_values(sample_root):
    img = nib.load(str(image_path(sample_root, SAMPLE_SCAN_ID)))
    assert img.get_data_dtype() == np.int16
    upstream = nib.load(str(MIRROR / CT_NAME))
    np.testing.assert_allclose(img.affine, upstream.affine)
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(upstream.dataobj))


def test_sample_masks_are_uint8_with_readme_voxel_counts(sample_root):
    seg = nib.load(str(MIRROR / SEG_NAME))
    for organ, count in README_COUNTS.items():
        img = nib.load(str(mask_path(sample_root, SAMPLE_SCAN_ID, organ)))
        assert img.get_data_dtype() == np.uint8, organ
        data = np.asarray(img.dataobj)
        assert set(np.unique(data)) <= {0, 1}, organ
        assert int(data.sum()) == count, organ
        np.testing.assert_allclose(img.affine, seg.affine)


def test_sample_meta_says_labels_are_model_output(sample_root):
    meta = read_meta(sample_root)
    assert list(meta["image_id"]) == [SAMPLE_SCAN_ID]
    assert "abdom" in meta.loc[0, "study_type"]
    assert "label_source" in meta.columns
    assert meta.loc[0, "label_source"] == LABEL_SOURCE
    assert "model output" in LABEL_SOURCE and "not manual" in LABEL_SOURCE


def test_build_sample_is_a_no_op_when_present(sample_root):
    before = {p: p.stat().st_mtime_ns for p in sample_root.rglob("*") if p.is_file()}
    assert build_sample(sample_root, MIRROR, progress=False) == sample_root
    assert {p: p.stat().st_mtime_ns for p in sample_root.rglob("*") if p.is_file()} == before


def _copy_mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in UPSTREAM_FILES:
        shutil.copyfile(MIRROR / name, mirror / name)
    return mirror


@pytest.mark.parametrize("name", list(UPSTREAM_FILES))
def test_build_sample_rejects_tampered_mirror(tmp_path, name):
    mirror = _copy_mirror(tmp_path)
    target = mirror / name
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    root = tmp_path / "out" / "dataset"
    with pytest.raises(ChecksumError, match=name):
        build_sample(root, mirror, progress=False)
    assert not root.exists()  # no half sample left behind
    assert list((tmp_path / "out").iterdir()) == []


def test_build_sample_missing_mirror_file(tmp_path):
    mirror = _copy_mirror(tmp_path)
    (mirror / SEG_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=SEG_NAME):
        build_sample(tmp_path / "out" / "dataset", mirror, progress=False)
    assert not (tmp_path / "out" / "dataset").exists()


# --------------------------------------------------------------------------
# load_scan / write_frames
# --------------------------------------------------------------------------


def test_load_scan(scan):
    assert scan.scan_id == SAMPLE_SCAN_ID
    assert scan.ct.shape == CANONICAL_SHAPE
    assert list(scan.masks) == list(ORGANS)
    for organ, count in README_COUNTS.items():
        m = scan.masks[organ]
        assert m.dtype == bool and m.shape == CANONICAL_SHAPE
        assert int(m.sum()) == count, organ
    assert slab_range(scan.masks) == SLAB


def test_slab_range_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        slab_range({"liver": np.zeros((2, 2, 3), bool)})


def test_write_frames_count_names_and_meta(frames):
    out_dir, meta = frames
    n = SLAB[1] - SLAB[0] + 1
    assert n == 46
    jpgs = sorted(p.name for p in out_dir.glob("*.jpg"))
    assert jpgs == sorted(f"{k}.jpg" for k in range(n))
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(jpgs + [FRAMES_META])
    saved = read_frames_meta(out_dir)
    assert saved == meta
    assert saved["slices"] == list(range(SLAB[0], SLAB[1] + 1))  # frame k -> slice 66 + k
    assert saved["scan_id"] == SAMPLE_SCAN_ID
    assert saved["shape"] == list(CANONICAL_SHAPE)
    assert (saved["window_level"], saved["window_width"], saved["jpeg_quality"]) == (LEVEL, WIDTH, QUALITY)
    # No temporary folder left beside the frames folder.
    assert [p.name for p in out_dir.parent.iterdir()] == [out_dir.name]


def test_frame_image_size_and_content(frames, scan):
    out_dir, meta = frames
    img8 = window_to_uint8(scan.ct.data, LEVEL, WIDTH)
    for frame in (0, 20, 45):
        with Image.open(out_dir / f"{frame}.jpg") as im:
            assert im.format == "JPEG"
            assert im.mode == "L"
            assert im.size == (122, 101)  # width = R axis (122 columns), height = A axis (101 rows)
            arr = np.asarray(im).astype(int)
        expected = slice_to_image(img8[:, :, meta["slices"][frame]]).astype(int)
        assert np.abs(arr - expected).mean() < 2.0
        # Not just any slice: a neighbouring slice fits worse.
        other = slice_to_image(img8[:, :, meta["slices"][frame] + (1 if frame < 45 else -1)]).astype(int)
        assert np.abs(arr - expected).mean() < np.abs(arr - other).mean()


def test_write_frames_second_call_does_not_rewrite(frames, scan):
    out_dir, meta = frames
    before = {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    again = write_frames(scan, out_dir, level=LEVEL, width=WIDTH, quality=QUALITY)
    assert again == meta
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()} == before


def test_write_frames_rewrites_when_settings_change(scan, tmp_path):
    small = type(scan)(scan_id=scan.scan_id, ct=scan.ct, masks={"gallbladder": scan.masks["gallbladder"]})
    out_dir = tmp_path / "frames" / SAMPLE_SCAN_ID
    write_frames(small, out_dir, level=LEVEL, width=WIDTH, quality=QUALITY)
    first = (out_dir / "0.jpg").read_bytes()
    meta = write_frames(small, out_dir, level=40.0, width=350.0, quality=QUALITY)
    assert json.loads((out_dir / FRAMES_META).read_text()) == meta
    assert meta["window_level"] == 40.0
    assert (out_dir / "0.jpg").read_bytes() != first
    z = np.flatnonzero(scan.masks["gallbladder"].any(axis=(0, 1)))
    assert meta["slices"] == list(range(int(z[0]), int(z[-1]) + 1))
    assert len(list(out_dir.glob("*.jpg"))) == len(meta["slices"])


def test_scan_geometry(scan):
    rows = scan_geometry(scan, {"mid": 50.0})
    assert [r["organ"] for r in rows] == list(ORGANS)
    by = {r["organ"]: r for r in rows}
    assert by["liver"]["volume_voxels"] == README_COUNTS["liver"]
    for r in rows:
        assert r["scan_id"] == SAMPLE_SCAN_ID
        assert SLAB[0] <= r["z_min"] <= r["z_mid"] <= r["z_max"] <= SLAB[1]
        assert r["area_mid"] > 0


def test_load_scan_rejects_mask_on_another_grid(sample_root, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(sample_root / SAMPLE_SCAN_ID, root / SAMPLE_SCAN_ID)
    bad = mask_path(root, SAMPLE_SCAN_ID, "pancreas")
    img = nib.load(str(bad))
    full, affine = np.asarray(img.dataobj).copy(), img.affine.copy()
    nib.save(nib.Nifti1Image(full[:, :, :-1], affine), str(bad))  # one slice fewer
    with pytest.raises(VolumeError, match="pancreas.nii.gz"):
        load_scan(root, SAMPLE_SCAN_ID, ORGANS)
    # Shifted by half a voxel, same shape: also rejected.
    affine[0, 3] += 1.5
    nib.save(nib.Nifti1Image(full, affine), str(bad))
    with pytest.raises(VolumeError, match="pancreas.nii.gz"):
        load_scan(root, SAMPLE_SCAN_ID, ORGANS)


def test_load_scan_missing_mask_raises(sample_root, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(sample_root / SAMPLE_SCAN_ID, root / SAMPLE_SCAN_ID)
    mask_path(root, SAMPLE_SCAN_ID, "spleen").unlink()
    with pytest.raises(VolumeError, match="spleen.nii.gz"):
        load_scan(root, SAMPLE_SCAN_ID, ORGANS)


def test_build_sample_downloads_from_the_pinned_address_when_no_mirror(tmp_path, monkeypatch):
    """The download path, against a local HTTP server on 127.0.0.1 serving the upstream files."""
    import functools
    import http.server
    import threading

    import helpers.sample as sample_mod

    served = tmp_path / "served"
    served.mkdir()
    for name in UPSTREAM_FILES:
        shutil.copyfile(MIRROR / name, served / name)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(sample_mod, "UPSTREAM_BASE_URL", f"http://127.0.0.1:{server.server_port}/")
        root = sample_mod.build_sample(tmp_path / "sample", tmp_path / "no-such-mirror", progress=False)
        assert (root / "meta.csv").is_file()
        assert sorted(p.lstrip("/") for p in requests if p.endswith(".nii.gz")) == sorted(UPSTREAM_FILES)
        # a server with a different file is refused by its checksum, and nothing is built
        (served / "example_ct.nii.gz").write_bytes(b"not the pinned file")
        with pytest.raises(ChecksumError, match="example_ct.nii.gz"):
            sample_mod.build_sample(tmp_path / "sample2", None, progress=False)
        assert not (tmp_path / "sample2").exists()
    finally:
        server.shutdown()
