"""DICOM series and MR volumes go through the data stage (notebooks 01-02) like NIfTI CT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import dataset, preprocess
from helpers.layout import RunLayout
from helpers.params import LEVELS, ORGANS
from helpers.readers import TOTAL_MR_LABEL_IDS
from helpers.sample import V2_LABEL_IDS

from conftest import SHARED

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real example files not found at {SHARED}")


def make_dataset(root: Path, scan_id: str, image: Path, image_name: str, labels: Path, ids: dict[str, int]) -> Path:
    """A one-scan dataset in the TotalSegmentator layout, masks split from a label map."""
    scan_dir = root / scan_id
    (scan_dir / "segmentations").mkdir(parents=True)
    if image.is_dir():
        shutil.copytree(image, scan_dir / image_name)
    else:
        shutil.copyfile(image, scan_dir / image_name)
    seg = nib.load(str(labels))
    lab = np.asarray(seg.dataobj)
    for organ in ORGANS:
        nib.save(nib.Nifti1Image((lab == ids[organ]).astype(np.uint8), seg.affine),
                 str(scan_dir / "segmentations" / f"{organ}.nii.gz"))
    pd.DataFrame([{"image_id": scan_id, "age": 50, "gender": "f", "institute": "x",
                   "study_type": "ct abdomen"}]).to_csv(root / "meta.csv", sep=";", index=False)
    return root


def run_data_stage(root: Path, tmp: Path, **kw):
    layout = RunLayout(tmp / "run", tmp / "rep")
    sel = dataset.select(root, ORGANS, max_cases_per_institution=20, min_mask_voxels=100, seed=0, progress=False)
    geom, errors = preprocess.preprocess_all(root, sel.manifest, layout, quality=95, levels=LEVELS,
                                             progress=False, **kw)
    return sel, geom, errors, layout


def test_a_dicom_series_goes_through_selection_and_preprocessing(tmp_path):
    root = make_dataset(tmp_path / "ds", "d0000", SHARED / "example_ct_dicom", "dicom",
                        SHARED / "example_seg_dicom.nii.gz", V2_LABEL_IDS)
    assert dataset.image_path(root, "d0000").name == "dicom"
    sel, geom, errors, layout = run_data_stage(root, tmp_path, level=50, width=400)
    status = sel.manifest.set_index("organ")["status"]
    # the DICOM example's label map holds liver, spleen, pancreas and the right adrenal only
    assert set(status[status == "present"].index) == {"liver", "spleen", "pancreas", "adrenal_gland_right"}
    assert (sel.scans["status"] == "selected").all()
    assert errors.empty, errors.to_dict("records")
    meta = json.loads((layout.frames_dir("d0000") / "frames.json").read_text())
    assert meta["slices"] == list(range(meta["slices"][0], meta["slices"][-1] + 1))
    assert len(list(layout.frames_dir("d0000").glob("*.jpg"))) == len(meta["slices"])
    assert set(geom["organ"]) == set(status[status == "present"].index)


def test_an_mr_volume_uses_the_percentile_window(tmp_path):
    root = make_dataset(tmp_path / "ds", "m0000", SHARED / "example_mr_sm.nii.gz", "mri.nii.gz",
                        SHARED / "example_seg_mr.nii.gz", TOTAL_MR_LABEL_IDS)
    assert dataset.image_path(root, "m0000").name == "mri.nii.gz"
    sel, geom, errors, layout = run_data_stage(root, tmp_path, level=None, width=None, modality="mr",
                                               percentiles=(1.0, 99.0))
    assert errors.empty, errors.to_dict("records")
    # adrenals (91 and 86 voxels) fall under the 100-voxel threshold
    too_small = set(sel.manifest.loc[sel.manifest["status"] == "too_small", "organ"])
    assert too_small == {"adrenal_gland_right", "adrenal_gland_left"}
    frames = layout.frames_dir("m0000")
    meta = json.loads((frames / "frames.json").read_text())
    assert meta["modality"] == "mr" and meta["mr_percentiles"] == [1.0, 99.0]
    assert meta["window_level"] is None
    pixels = np.concatenate([np.asarray(Image.open(f)).ravel() for f in frames.glob("*.jpg")])
    assert pixels.min() <= 5 and pixels.max() >= 250  # the percentile window spans the 8-bit range
