"""Tests of helpers.readers: DICOM series reading (real and synthetic), MR percentile window."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers.readers import TOTAL_MR_LABEL_IDS, intensity_to_uint8, percentile_window, read_dicom_series
from helpers.volumes import VolumeError, load_volume, window_to_uint8

pydicom = pytest.importorskip("pydicom")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator-example"
DICOM_DIR = SHARED / "example_ct_dicom"
DICOM_SEG = SHARED / "example_seg_dicom.nii.gz"
V2_IDS = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 5}


# -- synthetic series ----------------------------------------------------------

ROWS, COLS = 4, 5
ROW_SPACING, COL_SPACING = 2.0, 1.5  # DICOM PixelSpacing order: between rows, between columns


def _value_lps(p: np.ndarray) -> np.ndarray:
    """Stored value of a pixel as a function of its LPS position (distinct, integral)."""
    return 5000 + np.rint(2 * p[..., 0] + 7 * p[..., 1] + 31 * p[..., 2]).astype(int)


def _write_series(
    folder: Path,
    *,
    n_slices: int = 6,
    iop=(1, 0, 0, 0, 1, 0),
    origin=(-10.0, 20.0, -50.0),
    step: float = 3.0,
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uids=None,
    skip=(),
    drop_position: int | None = None,
    iop_override: dict | None = None,
) -> list[Path]:
    """A DICOM series whose pixel values encode their LPS position; files written in shuffled order."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(iop, dtype=float)
    row_cos, col_cos = iop[:3], iop[3:]
    normal = np.cross(row_cos, col_cos)
    series_uid = generate_uid()
    paths = []
    order = np.random.default_rng(0).permutation(n_slices)
    for rank, k in enumerate(order):
        if k in skip:
            continue
        ipp = np.asarray(origin) + k * step * normal
        r, c = np.meshgrid(np.arange(ROWS), np.arange(COLS), indexing="ij")
        pos = ipp + c[..., None] * COL_SPACING * row_cos + r[..., None] * ROW_SPACING * col_cos
        stored = _value_lps(pos).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uids[k] if series_uids else series_uid
        ds.InstanceNumber = int(rank + 1)  # deliberately not the spatial order
        ds.Rows, ds.Columns = ROWS, COLS
        ds.PixelSpacing = [ROW_SPACING, COL_SPACING]
        ds.ImageOrientationPatient = [float(v) for v in (iop_override or {}).get(k, iop)]
        if k != drop_position:
            ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = stored.tobytes()
        path = folder / f"IM{rank:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _world_lps(affine: np.ndarray, shape) -> np.ndarray:
    """LPS position of every voxel of a RAS-affine volume."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    ras = idx @ affine[:3, :3].T + affine[:3, 3]
    return ras * np.array([-1.0, -1.0, 1.0])


@pytest.mark.parametrize(
    "iop",
    [
        (1, 0, 0, 0, 1, 0),  # axial, the usual
        (1, 0, 0, 0, 0, -1),  # coronal
        (0, 1, 0, 0, 0, -1),  # sagittal
        (-1, 0, 0, 0, 1, 0),  # axial, feet-first-like flipped rows
    ],
)
def test_synthetic_series_every_voxel_in_place(tmp_path, iop):
    _write_series(tmp_path / "s", iop=iop, slope=2.0, intercept=-1024.0)
    vol = read_dicom_series(tmp_path / "s")
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert vol.path == tmp_path / "s"
    expected = _value_lps(_world_lps(vol.affine, vol.shape)) * 2.0 - 1024.0
    np.testing.assert_array_equal(vol.data, expected)
    assert sorted(np.round(vol.spacing, 6)) == sorted([ROW_SPACING, COL_SPACING, 3.0])


def test_synthetic_series_integral_rescale_is_int16_and_fractional_is_float(tmp_path):
    _write_series(tmp_path / "a", slope=1.0, intercept=-1024.0)
    assert read_dicom_series(tmp_path / "a").data.dtype == np.int16
    _write_series(tmp_path / "b", slope=0.5, intercept=-1024.0)
    vol = read_dicom_series(tmp_path / "b")
    assert vol.data.dtype == np.float32
    np.testing.assert_allclose(vol.data, _value_lps(_world_lps(vol.affine, vol.shape)) * 0.5 - 1024.0)


def test_load_volume_dispatches_a_folder(tmp_path):
    _write_series(tmp_path / "s")
    a = load_volume(tmp_path / "s")
    b = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert load_volume(tmp_path / "s", dtype=np.float32).data.dtype == np.float32


def test_non_dicom_files_in_the_folder_are_ignored(tmp_path):
    _write_series(tmp_path / "s")
    (tmp_path / "s" / "README.txt").write_text("not dicom")
    assert read_dicom_series(tmp_path / "s").shape[2] == 6


def test_error_no_dicom_files(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(VolumeError, match=r"empty.*no DICOM files"):
        read_dicom_series(tmp_path / "empty")


def test_error_not_a_folder(tmp_path):
    with pytest.raises(VolumeError, match="not a folder"):
        read_dicom_series(tmp_path / "missing")


def test_error_mixed_series(tmp_path):
    _write_series(tmp_path / "m", series_uids=["1.2.3"] * 3 + ["1.2.4"] * 3)
    with pytest.raises(VolumeError, match=r"/m: mixed series"):
        read_dicom_series(tmp_path / "m")


def test_error_inconsistent_orientation(tmp_path):
    _write_series(tmp_path / "o", iop_override={2: (1, 0, 0, 0, 0.8, 0.6)})
    with pytest.raises(VolumeError, match=r"/o: inconsistent orientation"):
        read_dicom_series(tmp_path / "o")


def test_error_missing_position(tmp_path):
    _write_series(tmp_path / "p", drop_position=3)
    with pytest.raises(VolumeError, match=r"/p: .*ImagePositionPatient"):
        read_dicom_series(tmp_path / "p")


def test_error_missing_slice_gives_uneven_spacing(tmp_path):
    _write_series(tmp_path / "g", skip=(3,))
    with pytest.raises(VolumeError, match="uneven slice spacing"):
        read_dicom_series(tmp_path / "g")


def test_error_duplicate_position(tmp_path):
    _write_series(tmp_path / "d", n_slices=4)
    paths = sorted((tmp_path / "d").iterdir())
    ds = pydicom.dcmread(paths[0])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "d" / "copy", enforce_file_format=True)
    with pytest.raises(VolumeError, match="same position"):
        read_dicom_series(tmp_path / "d")


# -- the real DICOM example ----------------------------------------------------


@pytest.fixture(scope="module")
def real_dicom():
    if not DICOM_DIR.is_dir() or not DICOM_SEG.is_file():
        pytest.skip(f"real DICOM example not found at {SHARED}")
    return read_dicom_series(DICOM_DIR), load_volume(DICOM_SEG)


def test_real_dicom_lines_up_voxel_for_voxel_with_its_label_map(real_dicom):
    ct, seg = real_dicom
    assert ct.shape == seg.shape == (512, 512, 20)
    np.testing.assert_allclose(ct.affine, seg.affine, atol=1e-4)
    assert nib.aff2axcodes(ct.affine) == ("R", "A", "S")
    np.testing.assert_allclose(ct.spacing, (0.9765625, 0.9765625, 2.0), atol=1e-6)


def test_real_dicom_is_in_hounsfield_units_and_organs_land_on_soft_tissue(real_dicom):
    ct, seg = real_dicom
    assert ct.data.dtype == np.int16
    assert ct.data.min() >= -1100  # rescale applied: air about -1000 HU, not raw 0
    outside = ct.data[seg.data == 0]
    assert np.percentile(outside, 5) < -900  # air around the patient
    for organ in ("liver", "spleen"):
        hu = ct.data[seg.data == V2_IDS[organ]]
        assert hu.size > 10_000
        assert 30 < hu.mean() < 200, (organ, hu.mean())  # soft tissue (contrast-enhanced)
        assert ((hu > -50) & (hu < 250)).mean() > 0.97, organ


def test_real_dicom_misaligned_mask_would_be_caught(real_dicom):
    """The soft-tissue check is sharp enough to see a flipped mask (so the test above means something)."""
    ct, seg = real_dicom
    liver = seg.data == V2_IDS["liver"]
    for wrong in (liver[::-1], liver[:, ::-1], liver.transpose(1, 0, 2)):
        hu = ct.data[wrong]
        assert ((hu > -50) & (hu < 250)).mean() < 0.9


# -- MR -------------------------------------------------------------------------


def test_percentile_window_maps_percentiles_to_0_and_255():
    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 100.0, size=(20, 20, 10)).astype(np.float32)
    img = percentile_window(data, 1.0, 99.0)
    assert img.dtype == np.uint8
    lo, hi = np.percentile(data, [1.0, 99.0])
    assert (img[data <= lo] == 0).all() and (img[data >= hi] == 255).all()
    mid = (data > lo) & (data < hi)
    np.testing.assert_allclose(img[mid], np.rint((data[mid] - lo) / (hi - lo) * 255), atol=1)
    # monotone
    order = np.argsort(data, axis=None)
    assert (np.diff(img.ravel()[order].astype(int)) >= 0).all()


def test_percentile_window_defaults_constant_and_bad_arguments():
    data = np.arange(1000, dtype=np.int16).reshape(10, 10, 10)
    np.testing.assert_array_equal(percentile_window(data), percentile_window(data, 0.5, 99.5))
    assert not percentile_window(np.full((3, 3, 3), 7.0)).any()
    for low, high in ((50, 50), (-1, 90), (10, 101), (90, 10)):
        with pytest.raises(ValueError, match="percentile_window"):
            percentile_window(data, low, high)


def test_intensity_to_uint8_dispatches_on_modality():
    data = np.linspace(-1000, 1000, 1000).reshape(10, 10, 10)
    np.testing.assert_array_equal(intensity_to_uint8(data, "CT", level=50, width=400), window_to_uint8(data, 50, 400))
    np.testing.assert_array_equal(intensity_to_uint8(data, "mr", percentiles=(2, 98)), percentile_window(data, 2, 98))
    with pytest.raises(ValueError, match="modality"):
        intensity_to_uint8(data, "pet")
    with pytest.raises(ValueError, match="level and width"):
        intensity_to_uint8(data, "ct")


def test_real_mr_example_window_and_label_ids():
    mr_path, seg_path = SHARED / "example_mr_sm.nii.gz", SHARED / "example_seg_mr.nii.gz"
    if not mr_path.is_file():
        pytest.skip(f"real MR example not found at {SHARED}")
    mr, seg = load_volume(mr_path), load_volume(seg_path)
    assert mr.shape == seg.shape
    img = percentile_window(mr.data)
    assert img.min() == 0 and img.max() == 255
    # the liver (total_mr id 5) is the largest of the study organs in this upper-abdomen MR
    counts = {o: int((seg.data == i).sum()) for o, i in TOTAL_MR_LABEL_IDS.items()}
    assert max(counts, key=counts.get) == "liver"
    assert counts["spleen"] > 0 and counts["kidney_right"] > 0


# -- MR frames through the data stage (helpers.preprocess.write_frames) ---------------


def test_write_frames_mr_uses_the_percentile_window_and_ct_metadata_is_unchanged(tmp_path):
    from PIL import Image

    from helpers.preprocess import ScanData, write_frames
    from helpers.volumes import Volume, slice_to_image

    rng = np.random.default_rng(1)
    data = rng.gamma(2.0, 150.0, size=(16, 12, 6)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[4:9, 3:8, 1:5] = True
    scan = ScanData("mr1", Volume(data, np.eye(4), np.array([[0, 1], [1, 1], [2, 1]]), tmp_path / "mr.nii.gz"),
                    {"liver": mask})
    meta = write_frames(scan, tmp_path / "mr", level=None, width=None, quality=100, modality="mr",
                        percentiles=(2.0, 98.0))
    assert meta["modality"] == "mr" and meta["mr_percentiles"] == [2.0, 98.0]
    assert meta["window_level"] is None and meta["slices"] == [1, 2, 3, 4]
    img8 = percentile_window(data, 2.0, 98.0)
    frame = np.asarray(Image.open(tmp_path / "mr" / "0.jpg")).astype(int)
    assert np.abs(frame - slice_to_image(img8[:, :, 1]).astype(int)).mean() < 2
    # a change of percentiles rewrites the frames
    again = write_frames(scan, tmp_path / "mr", level=None, width=None, quality=100, modality="mr",
                         percentiles=(1.0, 99.0))
    assert again["mr_percentiles"] == [1.0, 99.0]
    # CT: the metadata keeps its old keys only (existing CT frames stay valid)
    ct = write_frames(scan, tmp_path / "ct", level=50.0, width=400.0, quality=95)
    assert "modality" not in ct and (ct["window_level"], ct["window_width"]) == (50.0, 400.0)
    with pytest.raises(ValueError, match="modality"):
        write_frames(scan, tmp_path / "x", level=50.0, width=400.0, quality=95, modality="pet")
