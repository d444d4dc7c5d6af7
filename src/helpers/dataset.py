"""Data selection (notebook 01): which scans and organ masks enter the study.

Works on a folder in the TotalSegmentator layout (v1.0 from Zenodo record
6802614, or v2; both ship ``segmentations/<class name>.nii.gz`` with the same
names for the study organs)::

    <root>/meta.csv
    <root>/<image_id>/ct.nii.gz      (or mri.nii.gz, or a dicom/ series folder)
    <root>/<image_id>/segmentations/<organ>.nii.gz

Selection, in order (each step's count goes into the flow table):

1. scans found: rows of meta.csv;
2. abdomen: the scan covers the abdomen. Defined as: the normalised
   ``study_type`` names the abdomen (contains ``"abdom"``), or else at least
   one study-organ mask of the scan is non-empty (so whole-body and
   polytrauma scans count when they show an abdominal organ);
3. not angiography: ``"angiography"`` does not occur in ``study_type``;
4. sampled: at most ``max_cases_per_institution`` scans per institute, drawn
   with the run's seed (all of them when fewer);
5. readable: the CT can be read; a scan whose CT cannot be read is recorded
   with the reason and skipped, the run goes on;
6. evaluated: at least one of its organ masks is included (the scans the
   demographics describe).

Then per sampled scan x organ: a mask is *present* (non-empty), *empty*,
*missing* (no file), *unreadable*, or *too_small* (non-empty with
``min_mask_voxels`` voxels or fewer); only present masks are included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from helpers.files import write_csv
from helpers.volumes import VolumeError, check_same_grid, load_volume

META_COLUMNS = ("image_id", "age", "gender", "institute", "study_type")


def normalise_study_type(text: object) -> str:
    """Strip, lower-case and collapse white space (``NaN`` -> ``""``)."""
    if not isinstance(text, str):
        return ""
    return re.sub(r"\s+", " ", text.strip().lower())


def read_meta(root: str | Path) -> pd.DataFrame:
    """Read ``<root>/meta.csv`` (semicolon separated, UTF-8 with or without BOM).

    Returns one row per scan with at least :data:`META_COLUMNS`;
    ``study_type`` is normalised (:func:`normalise_study_type`), ``image_id``
    and ``institute`` are strings. Raises ``FileNotFoundError`` or
    ``ValueError`` naming the file when it is missing or lacks a column.
    """
    path = Path(root) / "meta.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: meta.csv not found; is {root} a TotalSegmentator dataset folder?")
    meta = pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype={"image_id": str, "institute": str, "gender": str})
    meta.columns = [c.strip() for c in meta.columns]
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(meta.columns)} (expected ';' separators)")
    meta["image_id"] = meta["image_id"].str.strip()
    meta["institute"] = meta["institute"].fillna("unknown").astype(str).str.strip()
    meta["study_type"] = meta["study_type"].map(normalise_study_type)
    meta["age"] = pd.to_numeric(meta["age"], errors="coerce")
    meta["gender"] = meta["gender"].fillna("").astype(str).str.strip().str.lower()
    return meta.reset_index(drop=True)


def model_labels(meta: pd.DataFrame) -> bool:
    """True when meta.csv says (column ``label_source``) the labels are model output."""
    if "label_source" not in meta.columns:
        return False
    return bool(meta["label_source"].fillna("").str.contains("model output", case=False).any())


def mask_path(root: Path, scan_id: str, organ: str) -> Path:
    """Path of one organ mask in the TotalSegmentator layout."""
    return Path(root) / scan_id / "segmentations" / f"{organ}.nii.gz"


#: Where a scan's image may be, in order: the TotalSegmentator CT file, the
#: TotalSegmentator MR file, a folder holding one DICOM series.
IMAGE_NAMES: tuple[str, ...] = ("ct.nii.gz", "mri.nii.gz", "dicom")


def image_path(root: Path, scan_id: str) -> Path:
    """Path of a scan's image: the first of :data:`IMAGE_NAMES` that exists
    (``ct.nii.gz`` when none does, so that the error names the expected file)."""
    scan_dir = Path(root) / scan_id
    for name in IMAGE_NAMES:
        if (scan_dir / name).exists():
            return scan_dir / name
    return scan_dir / IMAGE_NAMES[0]


@dataclass(frozen=True)
class MaskInfo:
    """What one organ mask holds: status, voxel count and z extent (canonical)."""

    status: str
    n_voxels: int
    z_min: int | None
    z_max: int | None
    reason: str


def inspect_mask(path: Path, min_voxels: int, ct=None) -> MaskInfo:
    """Inspect one mask file; never raises for a bad file, records it instead.

    With ``ct`` (a :class:`~helpers.volumes.Volume`) the mask must also lie on
    the CT's grid, else it is *unreadable* with the reason.
    """
    if not path.is_file():
        return MaskInfo("missing", 0, None, None, f"{path}: file not found")
    try:
        vol = load_volume(path)
        if ct is not None:
            check_same_grid(ct, vol)
    except VolumeError as exc:
        return MaskInfo("unreadable", 0, None, None, str(exc))
    mask = vol.data > 0
    n = int(mask.sum())
    if n == 0:
        return MaskInfo("empty", 0, None, None, "mask is empty")
    z = np.flatnonzero(mask.any(axis=(0, 1)))
    if n <= min_voxels:
        return MaskInfo("too_small", n, int(z[0]), int(z[-1]), f"{n} voxels <= {min_voxels}")
    return MaskInfo("present", n, int(z[0]), int(z[-1]), "")


def covers_abdomen(root: Path, scan_id: str, study_type: str, organs: Sequence[str]) -> bool:
    """The module's abdomen rule: study_type names it, else any organ mask is non-empty."""
    if "abdom" in study_type:
        return True
    for organ in organs:
        info = inspect_mask(mask_path(root, scan_id, organ), min_voxels=0)
        if info.status == "present":
            return True
    return False


def sample_per_institution(scans: pd.DataFrame, max_per_institution: int, seed: int) -> pd.DataFrame:
    """Keep at most ``max_per_institution`` scans per institute, drawn with ``seed``.

    Institutes are visited in sorted order and scans sorted by ``image_id``
    before drawing, so the draw depends only on the seed and the scan list.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for _, group in sorted(scans.groupby("institute"), key=lambda kv: str(kv[0])):
        group = group.sort_values("image_id")
        if len(group) > max_per_institution:
            idx = np.sort(rng.choice(len(group), size=max_per_institution, replace=False))
            group = group.iloc[idx]
        picked.append(group)
    if not picked:
        return scans.iloc[0:0]
    return pd.concat(picked).sort_values("image_id").reset_index(drop=True)


@dataclass
class Selection:
    """Outputs of the data selection stage."""

    scans: pd.DataFrame  #: one row per scan of meta.csv with its fate
    manifest: pd.DataFrame  #: one row per sampled readable scan x organ
    flow: pd.DataFrame  #: step, count (draws Figure 1)


def select(
    root: str | Path,
    organs: Iterable[str],
    *,
    max_cases_per_institution: int,
    min_mask_voxels: int,
    seed: int,
    progress: bool = True,
) -> Selection:
    """Run the whole selection (see the module docstring for the rules)."""
    from tqdm.auto import tqdm

    root = Path(root)
    organs = list(organs)
    scans = read_meta(root)
    scans["angiography"] = scans["study_type"].str.contains("angiography", regex=False)
    scans["abdomen"] = [
        covers_abdomen(root, sid, st, organs)
        for sid, st in tqdm(
            zip(scans["image_id"], scans["study_type"]), total=len(scans), desc="abdomen check", disable=not progress
        )
    ]
    eligible = scans[scans["abdomen"] & ~scans["angiography"]]
    sampled = sample_per_institution(eligible, max_cases_per_institution, seed)
    scans["sampled"] = scans["image_id"].isin(sampled["image_id"])
    scans["ct_error"] = ""
    rows = []
    for sid in tqdm(sampled["image_id"], desc="inspect masks", disable=not progress):
        try:
            ct = load_volume(image_path(root, sid))
        except VolumeError as exc:
            scans.loc[scans["image_id"] == sid, "ct_error"] = str(exc)
            continue
        meta_row = sampled.loc[sampled["image_id"] == sid].iloc[0]
        for organ in organs:
            info = inspect_mask(mask_path(root, sid, organ), min_mask_voxels, ct=ct)
            rows.append(
                {
                    "scan_id": sid,
                    "institute": meta_row["institute"],
                    "organ": organ,
                    "status": info.status,
                    "n_voxels": info.n_voxels,
                    "z_min": info.z_min,
                    "z_max": info.z_max,
                    "included": info.status == "present",
                    "reason": info.reason,
                }
            )
    manifest = pd.DataFrame(
        rows, columns=["scan_id", "institute", "organ", "status", "n_voxels", "z_min", "z_max", "included", "reason"]
    )
    evaluated = scans["image_id"].isin(manifest.loc[manifest["included"], "scan_id"])
    scans["status"] = np.select(
        [~scans["abdomen"], scans["angiography"], ~scans["sampled"], scans["ct_error"] != "", ~evaluated],
        ["not abdomen", "angiography", "not sampled", "unreadable CT", "no evaluated organ"],
        default="selected",
    )
    flow = flow_table(scans, manifest, min_mask_voxels)
    return Selection(scans=scans, manifest=manifest, flow=flow)


def save_selection(sel: Selection, layout) -> None:
    """Write the selection's tables where later notebooks read them (:class:`~helpers.layout.RunLayout`)."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    write_csv(sel.scans, layout.scans)
    write_csv(sel.manifest, layout.manifest)
    write_csv(sel.flow, layout.flow)
    write_csv(demographics(sel.scans), layout.demographics)


def read_manifest(layout) -> pd.DataFrame:
    """Read the manifest written by notebook 01 (clear error when it is missing)."""
    if not layout.manifest.is_file():
        raise FileNotFoundError(f"{layout.manifest}: no manifest; run the data selection notebook (01) first")
    return pd.read_csv(layout.manifest, dtype={"scan_id": str, "institute": str})


def flow_table(scans: pd.DataFrame, manifest: pd.DataFrame, min_mask_voxels: int) -> pd.DataFrame:
    """Counts at every selection step (the data of Figure 1)."""
    abdomen = scans["abdomen"]
    not_angio = abdomen & ~scans["angiography"]
    found = manifest["status"].isin(["present", "too_small"])
    steps = [
        ("scans found", len(scans)),
        ("covering the abdomen", int(abdomen.sum())),
        ("not CT angiography", int(not_angio.sum())),
        ("sampled (max per institution)", int(scans["sampled"].sum())),
        ("CT readable", int(scans["status"].isin(["selected", "no evaluated organ"]).sum())),
        ("organ masks found (non-empty)", int(found.sum())),
        (f"masks excluded (<= {min_mask_voxels} voxels)", int((manifest["status"] == "too_small").sum())),
        ("masks unreadable", int((manifest["status"] == "unreadable").sum())),
        ("organ masks evaluated", int(manifest["included"].sum())),
        ("scans evaluated (at least one organ)", int((scans["status"] == "selected").sum())),
    ]
    return pd.DataFrame(steps, columns=["step", "count"])


def demographics(scans: pd.DataFrame) -> pd.DataFrame:
    """Age mean ± SD, sex counts and cases per institution of the evaluated scans
    (status ``selected``: at least one organ mask evaluated)."""
    sel = scans[scans["status"] == "selected"]
    age = sel["age"].dropna()
    rows = [
        ("scans", "n", len(sel)),
        ("age", "mean", round(float(age.mean()), 1) if len(age) else np.nan),
        ("age", "sd", round(float(age.std(ddof=1)), 1) if len(age) > 1 else np.nan),
        ("age", "n known", len(age)),
    ]
    sex = sel["gender"].replace({"m": "male", "f": "female", "": "unknown"})
    rows += [("sex", k, int(v)) for k, v in sex.value_counts().sort_index().items()]
    rows += [("institute", k, int(v)) for k, v in sel["institute"].value_counts().sort_index().items()]
    return pd.DataFrame(rows, columns=["variable", "level", "value"])
