"""The embedded sample: one real CT laid out like the TotalSegmentator dataset.

The upstream TotalSegmentator repository ships a real 3 mm abdomen-pelvis CT
with a label map (``tests/reference_files``). :func:`build_sample` turns those
two files into a one-scan dataset with the layout of the real download::

    <root>/meta.csv                          (semicolon separated)
    <root>/s0000/ct.nii.gz                   (int16)
    <root>/s0000/segmentations/<organ>.nii.gz  (uint8, one per study organ)

The files are taken from a local mirror folder when one is given, else
downloaded from the pinned commit; each file's sha256 is checked either way.
Its labels are TotalSegmentator model output, not manual annotation, and the
sample's meta.csv says so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from helpers.download import ChecksumError, download, sha256sum
from helpers.params import ORGANS

#: Upstream commit and folder of the example files (Apache-2.0).
UPSTREAM_BASE_URL = (
    "https://raw.githubusercontent.com/wasserth/TotalSegmentator/"
    "0e65a448d557382b1e925276212b3bec7f5aff83/tests/reference_files/"
)
#: The two upstream files the sample is built from, with their sha256.
UPSTREAM_FILES: dict[str, str] = {
    "example_ct.nii.gz": "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1",
    "example_seg_fast_force_split.nii.gz": "e8097758e56e73099075b6caaebce23ef11bc6fad66a4ec3753b9406846558c7",
}
#: Label ids of the study organs in TotalSegmentator's v2 "total" label map.
V2_LABEL_IDS: dict[str, int] = {
    "spleen": 1,
    "kidney_right": 2,
    "kidney_left": 3,
    "gallbladder": 4,
    "liver": 5,
    "pancreas": 7,
    "adrenal_gland_right": 8,
    "adrenal_gland_left": 9,
}
SAMPLE_SCAN_ID = "s0000"
LABEL_SOURCE = "TotalSegmentator model output (not manual ground truth)"


def fetch_upstream(dest_dir: Path, mirror: Path | None = None, *, progress: bool = True) -> dict[str, Path]:
    """Get the upstream example files into ``dest_dir``, sha256-checked.

    With ``mirror`` (an existing folder holding the files under their
    upstream names) the files are copied from there; otherwise (no mirror, or
    a mirror folder that does not exist on this machine) they are downloaded
    from :data:`UPSTREAM_BASE_URL`. A file whose hash differs raises
    :class:`~helpers.download.ChecksumError` naming it.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name, digest in UPSTREAM_FILES.items():
        dest = dest_dir / name
        if mirror is not None and Path(mirror).is_dir():
            src = Path(mirror) / name
            if not src.is_file():
                raise FileNotFoundError(f"sample mirror {mirror} has no {name}")
            actual = sha256sum(src)
            if actual != digest:
                raise ChecksumError(f"{src}: sha256 {actual} differs from the pinned {digest}")
            shutil.copyfile(src, dest)
        else:
            download(UPSTREAM_BASE_URL + name, dest, digest, progress=progress)
        out[name] = dest
    return out


def build_sample(root: str | Path, mirror: str | Path | None = None, *, progress: bool = True) -> Path:
    """Build the one-scan sample dataset at ``root`` (no-op when it exists).

    The CT is re-saved as int16 (its values fit), the v2 label map is split
    into one binary uint8 mask per study organ on the CT's grid, and a
    ``meta.csv`` in the TotalSegmentator v1 layout is written. The folder is
    assembled next to ``root`` and renamed into place, so an interrupted
    build leaves no half sample behind.
    """
    root = Path(root)
    if (root / "meta.csv").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".sample-") as tmp:
        tmp_path = Path(tmp)
        files = fetch_upstream(tmp_path / "upstream", Path(mirror) if mirror else None, progress=progress)
        build = tmp_path / "dataset"
        scan_dir = build / SAMPLE_SCAN_ID
        (scan_dir / "segmentations").mkdir(parents=True)
        ct = nib.load(str(files["example_ct.nii.gz"]))
        hu = np.asarray(ct.dataobj)
        if hu.min() < np.iinfo(np.int16).min or hu.max() > np.iinfo(np.int16).max:
            raise ValueError(f"{files['example_ct.nii.gz']}: values do not fit int16")
        ct16 = nib.Nifti1Image(hu.astype(np.int16), ct.affine, ct.header)
        ct16.set_data_dtype(np.int16)
        nib.save(ct16, str(scan_dir / "ct.nii.gz"))
        seg = nib.load(str(files["example_seg_fast_force_split.nii.gz"]))
        labels = np.asarray(seg.dataobj)
        for organ in ORGANS:
            mask = nib.Nifti1Image((labels == V2_LABEL_IDS[organ]).astype(np.uint8), seg.affine)
            mask.set_data_dtype(np.uint8)
            nib.save(mask, str(scan_dir / "segmentations" / f"{organ}.nii.gz"))
        pd.DataFrame(
            [
                {
                    "image_id": SAMPLE_SCAN_ID,
                    "age": np.nan,
                    "gender": "",
                    "institute": "upstream-example",
                    "study_type": "ct abdomen-pelvis",
                    "split": "test",
                    "label_source": LABEL_SOURCE,
                }
            ]
        ).to_csv(build / "meta.csv", sep=";", index=False)
        os.replace(build, root)
    return root
