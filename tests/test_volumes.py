"""Tests of helpers.volumes: reading, reorientation, grid checks, windowing, display."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers.volumes import (
    Volume,
    VolumeError,
    check_same_grid,
    image_to_slice,
    load_volume,
    slice_to_image,
    to_original,
    window_to_uint8,
)

SHAPE = (4, 5, 6)  # canonical RAS shape of the synthetic volume
SPACING = (2.0, 3.0, 4.0)
ORIGIN = (-10.0, 20.0, 30.0)


def _ras_affine() -> np.ndarray:
    aff = np.diag([*SPACING, 1.0])
    aff[:3, 3] = ORIGIN
    return aff


def _ras_data() -> np.ndarray:
    """Every voxel holds a distinct value, so a mix-up of voxels cannot go unseen."""
    return np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)


def _stored(codes: str) -> tuple[np.ndarray, np.ndarray]:
    """The RAS volume as a file with axis codes ``codes`` would store it (built by hand).

    Returns (data, affine) such that file voxel v and RAS voxel M @ v are the same
    physical point, with the file's affine = RAS affine @ M.
    """
    ras = _ras_data()
    n0, n1, n2 = SHAPE
    if codes == "RAS":
        data, m = ras, np.eye(4)
    elif codes == "LPS":
        # file[a, b, c] = ras[n0-1-a, n1-1-b, c]
        data = ras[::-1, ::-1, :]
        m = np.array([[-1, 0, 0, n0 - 1], [0, -1, 0, n1 - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    elif codes == "PIR":
        # file[a, b, c] = ras[c, n1-1-a, n2-1-b]
        data = ras.transpose(1, 2, 0)[::-1, ::-1, :]
        m = np.array([[0, 0, 1, 0], [-1, 0, 0, n1 - 1], [0, -1, 0, n2 - 1], [0, 0, 0, 1]], float)
    elif codes == "PRS":
        # file[a, b, c] = ras[b, n1-1-a, c]
        data = ras.transpose(1, 0, 2)[::-1, :, :]
        m = np.array([[0, 1, 0, 0], [-1, 0, 0, n1 - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    else:  # pragma: no cover - test helper misuse
        raise ValueError(codes)
    return np.ascontiguousarray(data), _ras_affine() @ m


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture(params=["RAS", "LPS", "PIR", "PRS"])
def stored(request, tmp_path):
    codes = request.param
    data, affine = _stored(codes)
    path = _save(tmp_path / f"vol_{codes}.nii.gz", data, affine)
    return codes, path, data, affine


# --------------------------------------------------------------------------
# load_volume: reorientation
# --------------------------------------------------------------------------


def test_stored_helper_builds_the_intended_orientation(stored):
    codes, _, data, affine = stored
    assert "".join(nib.aff2axcodes(affine)) == codes
    # The same physical point holds the same value: file voxel (0,0,0) <-> RAS voxel M @ 0.
    ras_index = np.linalg.solve(_ras_affine(), affine @ [0, 0, 0, 1])[:3]
    assert data[0, 0, 0] == _ras_data()[tuple(np.rint(ras_index).astype(int))]


def test_load_volume_reorients_to_ras_voxel_for_voxel(stored):
    codes, path, data, affine = stored
    vol = load_volume(path)
    assert isinstance(vol, Volume)
    assert vol.shape == SHAPE
    np.testing.assert_array_equal(vol.data, _ras_data())
    np.testing.assert_allclose(vol.affine, _ras_affine())
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert vol.spacing == pytest.approx(SPACING)
    assert vol.path == path


def test_load_volume_same_physical_point_same_value(stored):
    """Each file voxel's value sits, after loading, at the canonical index of its world point."""
    _, path, data, affine = stored
    vol = load_volume(path)
    idx = np.argwhere(np.ones(data.shape, bool))  # all file voxels
    world = nib.affines.apply_affine(affine, idx)
    canon_idx = np.rint(nib.affines.apply_affine(np.linalg.inv(vol.affine), world)).astype(int)
    np.testing.assert_array_equal(vol.data[tuple(canon_idx.T)], data[tuple(idx.T)])


def test_load_volume_dtype_conversion(tmp_path):
    path = _save(tmp_path / "v.nii.gz", _ras_data(), _ras_affine())
    vol = load_volume(path, dtype=np.float32)
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, _ras_data().astype(np.float32))


def test_load_volume_accepts_4d_with_singleton_last_axis(tmp_path):
    data, affine = _stored("LPS")
    path = _save(tmp_path / "v4.nii.gz", data[..., None], affine)
    vol = load_volume(path)
    assert vol.shape == SHAPE
    np.testing.assert_array_equal(vol.data, _ras_data())


def test_load_volume_rejects_true_4d_naming_the_file(tmp_path):
    path = _save(tmp_path / "rgb.nii.gz", np.zeros((*SHAPE, 3), np.int16), _ras_affine())
    with pytest.raises(VolumeError, match="rgb.nii.gz") as info:
        load_volume(path)
    assert "3D" in str(info.value)


def test_load_volume_rejects_2d(tmp_path):
    path = _save(tmp_path / "flat.nii.gz", np.zeros((4, 5), np.int16), np.eye(4))
    with pytest.raises(VolumeError, match="flat.nii.gz"):
        load_volume(path)


def test_load_volume_missing_file(tmp_path):
    path = tmp_path / "nope" / "ct.nii.gz"
    with pytest.raises(VolumeError, match="not found") as info:
        load_volume(path)
    assert str(path) in str(info.value)


def test_load_volume_random_bytes_raise_volume_error(tmp_path):
    path = tmp_path / "garbage.nii.gz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(VolumeError, match="garbage.nii.gz"):
        load_volume(path)


def test_load_volume_truncated_gzip_raises_volume_error(tmp_path):
    good = _save(
        tmp_path / "good.nii.gz",
        np.random.default_rng(1).integers(-1000, 1000, (48, 48, 48)).astype(np.int16),
        _ras_affine(),
    )
    raw = good.read_bytes()
    path = tmp_path / "truncated.nii.gz"
    path.write_bytes(raw[: len(raw) // 2])  # header intact, data cut
    with pytest.raises(VolumeError, match="truncated.nii.gz"):
        load_volume(path)


def test_load_volume_gzip_of_garbage_raises_volume_error(tmp_path):
    """A valid gzip stream whose content is not NIfTI."""
    path = tmp_path / "notnifti.nii.gz"
    path.write_bytes(gzip.compress(b"hello, this is not a NIfTI header" * 20))
    with pytest.raises(VolumeError, match="notnifti.nii.gz"):
        load_volume(path)


# --------------------------------------------------------------------------
# check_same_grid
# --------------------------------------------------------------------------


def test_check_same_grid_accepts_same_grid_in_other_storage_order(tmp_path):
    ct = load_volume(_save(tmp_path / "ct.nii.gz", *_stored("RAS")))
    data, affine = _stored("LPS")
    mask = load_volume(_save(tmp_path / "mask.nii.gz", (data > 50).astype(np.uint8), affine))
    check_same_grid(ct, mask)  # no exception


def test_check_same_grid_tolerates_tiny_affine_noise(tmp_path):
    ct = load_volume(_save(tmp_path / "ct.nii.gz", *_stored("RAS")))
    aff = _ras_affine()
    aff[:3, 3] += 1e-5
    mask = load_volume(_save(tmp_path / "mask.nii.gz", np.zeros(SHAPE, np.uint8), aff))
    check_same_grid(ct, mask)


def test_check_same_grid_shape_mismatch_names_mask(tmp_path):
    ct = load_volume(_save(tmp_path / "ct.nii.gz", *_stored("RAS")))
    mask = load_volume(_save(tmp_path / "liver.nii.gz", np.zeros((4, 5, 7), np.uint8), _ras_affine()))
    with pytest.raises(VolumeError, match="liver.nii.gz") as info:
        check_same_grid(ct, mask)
    assert "shape" in str(info.value)


def test_check_same_grid_affine_mismatch_names_mask(tmp_path):
    ct = load_volume(_save(tmp_path / "ct.nii.gz", *_stored("RAS")))
    aff = _ras_affine()
    aff[0, 3] += 0.5  # half a millimetre shift
    mask = load_volume(_save(tmp_path / "spleen.nii.gz", np.zeros(SHAPE, np.uint8), aff))
    with pytest.raises(VolumeError, match="spleen.nii.gz") as info:
        check_same_grid(ct, mask)
    assert "affine" in str(info.value)


def test_check_same_grid_spacing_mismatch(tmp_path):
    ct = load_volume(_save(tmp_path / "ct.nii.gz", *_stored("RAS")))
    aff = _ras_affine()
    aff[2, 2] = 4.1
    mask = load_volume(_save(tmp_path / "kidney.nii.gz", np.zeros(SHAPE, np.uint8), aff))
    with pytest.raises(VolumeError, match="kidney.nii.gz"):
        check_same_grid(ct, mask)


# --------------------------------------------------------------------------
# to_original
# --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "codes",
    [
        "RAS",
        "LPS",
        "PIR",
        "PRS",
    ],
)
def test_to_original_round_trips_voxel_for_voxel(tmp_path, codes):
    data, affine = _stored(codes)
    vol = load_volume(_save(tmp_path / "ct.nii.gz", data, affine))
    # A result computed in canonical space (e.g. a predicted mask) ...
    result = (vol.data % 3 == 0).astype(np.uint8)
    back = to_original(vol, result)
    # ... lands on the file's grid, voxel for voxel.
    assert back.shape == data.shape
    np.testing.assert_allclose(back.affine, affine)
    np.testing.assert_array_equal(np.asarray(back.dataobj), (data % 3 == 0).astype(np.uint8))


# --------------------------------------------------------------------------
# window_to_uint8
# --------------------------------------------------------------------------


def test_window_to_uint8_abdominal_window():
    hu = np.array([-1000, -150, -149, 0, 50, 250, 251, 3000], dtype=np.int16).reshape(2, 2, 2)
    out = window_to_uint8(hu, level=50, width=400)
    assert out.dtype == np.uint8
    assert out.shape == hu.shape
    flat = out.ravel()
    assert flat[0] == 0  # -1000, below the window
    assert flat[1] == 0  # window floor
    assert flat[2] == 1  # -149: 1/400 * 255 = 0.64 -> 1
    assert flat[3] == 96  # 0 HU: 150/400 * 255 = 95.6 -> 96
    assert flat[4] == 128  # level: 127.5 -> 128
    assert flat[5] == 255  # window ceiling
    assert flat[6] == 255 and flat[7] == 255  # above the window


def test_window_to_uint8_is_monotone():
    hu = np.linspace(-300, 400, 701).reshape(701, 1, 1)
    out = window_to_uint8(hu, level=50, width=400).ravel().astype(int)
    assert np.all(np.diff(out) >= 0)
    assert out[0] == 0 and out[-1] == 255


def test_window_to_uint8_constant_volume_is_zero():
    out = window_to_uint8(np.full((3, 4, 5), 40, dtype=np.int16), level=50, width=400)
    assert out.dtype == np.uint8 and out.shape == (3, 4, 5)
    assert not out.any()


def test_window_to_uint8_constant_outside_window_is_zero():
    out = window_to_uint8(np.full((2, 2, 2), 2000.0), level=50, width=400)
    assert not out.any()


# --------------------------------------------------------------------------
# slice_to_image / image_to_slice
# --------------------------------------------------------------------------


def test_slice_to_image_puts_anterior_top_and_right_left():
    n_r, n_a = 5, 3  # canonical slice [i (-> R), j (-> A)]
    axial = np.zeros((n_r, n_a), np.uint8)
    axial[n_r - 1, n_a - 1] = 1  # right-most, anterior-most
    axial[0, 0] = 2  # left-most, posterior-most
    axial[n_r - 1, 0] = 3  # right-most, posterior-most
    axial[0, n_a - 1] = 4  # left-most, anterior-most
    img = slice_to_image(axial)
    assert img.shape == (n_a, n_r)  # rows = A axis, columns = R axis
    assert img[0, 0] == 1
    assert img[-1, -1] == 2
    assert img[-1, 0] == 3
    assert img[0, -1] == 4


def test_slice_to_image_marker_row_and_column():
    axial = np.zeros((7, 4), np.uint8)
    axial[5, 1] = 9  # i=5 (one from the right edge), j=1 (two from the anterior edge)
    img = slice_to_image(axial)
    rows, cols = np.nonzero(img)
    assert (int(rows[0]), int(cols[0])) == (4 - 1 - 1, 7 - 1 - 5)


def test_slice_image_round_trip():
    rng = np.random.default_rng(3)
    axial = rng.integers(0, 255, (6, 9)).astype(np.uint8)
    np.testing.assert_array_equal(image_to_slice(slice_to_image(axial)), axial)
    img = rng.integers(0, 255, (9, 6)).astype(np.uint8)
    np.testing.assert_array_equal(slice_to_image(image_to_slice(img)), img)
    assert image_to_slice(img).shape == (6, 9)
