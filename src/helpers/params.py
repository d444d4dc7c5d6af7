"""The study's parameters: one typed object, read from a YAML file in ``params/``.

Every constant of the study (organs, CT window, prompt counts, start levels,
significance level, ...) has exactly one default here; a parameter file in
``params/`` overrides what differs for a run. Notebooks receive the path of a
parameter file (and optional single overrides) from papermill and call
:func:`load_params`; they repeat no constant.

Relative paths inside a parameter file are resolved against the project root,
taken to be the folder above the parameter file's folder (``params/..``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from helpers.layout import RunLayout

#: The eight study organs, in the paper's order (TotalSegmentator class names).
ORGANS: tuple[str, ...] = (
    "liver",
    "kidney_right",
    "kidney_left",
    "spleen",
    "gallbladder",
    "pancreas",
    "adrenal_gland_right",
    "adrenal_gland_left",
)

#: Start-slice levels: approach name -> percentile of the organ's z indices.
LEVELS: dict[str, float] = {"caudal": 25.0, "mid": 50.0, "cranial": 75.0}

#: Fields holding paths, resolved against the project root.
_PATH_FIELDS = ("dataset_root", "sample_mirror", "output_root", "reports_root", "cache_dir")


@dataclass(frozen=True)
class StudyParams:
    """All parameters of one run of the study (defaults = the paper's settings)."""

    # -- run -------------------------------------------------------------
    run_name: str = "paper"
    seed: int = 0
    output_root: Path = Path("outputs")
    reports_root: Path = Path("reports")
    # -- data selection (notebook 01) ----------------------------------
    dataset_root: Path = Path("data/Totalsegmentator_dataset")
    dataset_version: str = "v1"
    #: Build the embedded one-scan sample into ``dataset_root`` when it is missing.
    build_sample: bool = False
    #: Local folder holding the upstream example files (else they are downloaded).
    sample_mirror: Path | None = None
    organs: tuple[str, ...] = ORGANS
    max_cases_per_institution: int = 20
    #: Masks with this many voxels or fewer are excluded (paper: 100).
    min_mask_voxels: int = 100
    # -- preprocessing (notebook 02) -------------------------------------
    #: "ct": the HU window below; "mr": a per-volume percentile window (no HU scale).
    modality: str = "ct"
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    window_level: float = 50.0
    window_width: float = 400.0
    jpeg_quality: int = 95
    # -- prompts and inference (notebook 03) -----------------------------
    levels: Mapping[str, float] = field(default_factory=lambda: dict(LEVELS))
    n_positive: int = 5
    n_negative: int = 5
    #: Negative points lie at in-plane distance [min, max] voxels from the mask.
    negative_min_distance: float = 2.0
    negative_max_distance: float = 3.0
    #: Approaches that also get the run without negative prompts.
    ablation_approaches: tuple[str, ...] = ("caudal",)
    model: str = "sam2_hiera_large"
    #: "official" (download, sha256-checked), "random" (seeded random weights:
    #: compute benchmarks and tests only, never results) or a local file path.
    checkpoint: str = "official"
    image_size: int = 1024
    device: str = "auto"
    #: Frames tracked in each direction from the start slice (None: to the end).
    max_frames_per_direction: int | None = None
    #: Encode each slice once per scan and reuse it across runs (exact).
    reuse_features: bool = True
    cache_dir: Path = Path("cache")
    # -- scale-out ---------------------------------------------------------
    scheduler: str = "none"
    workers: int = 2
    max_retries: int = 2
    # -- metrics and statistics (notebook 04) ----------------------------
    nsd_tolerance_mm: float = 2.0
    alpha: float = 0.05
    #: Paired cases a Wilcoxon test needs, cases a Spearman correlation needs.
    min_pairs: int = 5
    min_spearman_n: int = 3
    n_boot: int = 2000

    @property
    def approaches(self) -> tuple[str, ...]:
        """Approach names, caudal to cranial."""
        return tuple(self.levels)

    @property
    def n_comparisons(self) -> int:
        """Pairs of approaches compared (3 for caudal/mid/cranial): the Bonferroni divisor."""
        n = len(self.levels)
        return n * (n - 1) // 2

    @property
    def run_dir(self) -> Path:
        """Folder of this run's data products (manifest, frames, masks, tables)."""
        return self.output_root / self.run_name

    @property
    def report_dir(self) -> Path:
        """Folder of this run's rendered notebooks, figures and tables."""
        return self.reports_root / self.run_name

    @property
    def layout(self) -> RunLayout:
        """Where this run's stages write (see :mod:`helpers.layout`)."""
        return RunLayout(self.run_dir, self.report_dir)

    @property
    def random_weights(self) -> bool:
        """True when the model runs with random weights (outputs are not results)."""
        return self.checkpoint == "random"

    def as_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly dict of all parameters (paths as strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
        out["levels"] = dict(self.levels)
        return out


def _coerce(name: str, value: Any, root: Path) -> Any:
    if value is None:
        return None
    if name in _PATH_FIELDS:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (root / p).resolve()
    if name == "mr_percentiles":
        return tuple(float(q) for q in value)
    if name in ("organs", "ablation_approaches"):
        if isinstance(value, str):
            value = [value]
        return tuple(value)
    if name == "levels":
        return {str(k): float(v) for k, v in dict(value).items()}
    return value


def load_params(path: str | Path | None = None, **overrides: Any) -> StudyParams:
    """Read a parameter file and apply overrides (``None`` overrides are ignored).

    Parameters
    ----------
    path
        YAML file with a mapping of :class:`StudyParams` fields; ``None`` gives
        the defaults (the paper's settings).
    **overrides
        Single parameters, e.g. from a notebook's papermill ``parameters`` cell.

    Raises
    ------
    FileNotFoundError, ValueError
        When the file is missing, not a mapping, or names an unknown parameter
        (the message names the file and the key).
    """
    values: dict[str, Any] = {}
    root = Path.cwd()
    if path is not None:
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"parameter file not found: {path}")
        root = path.parent.parent
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of parameters, got {type(loaded).__name__}")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(StudyParams)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = path if path is not None else "overrides"
        raise ValueError(f"{where}: unknown parameter(s) {unknown}; known: {sorted(known)}")
    coerced = {k: _coerce(k, v, root) for k, v in values.items()}
    defaults = StudyParams()
    for name in _PATH_FIELDS:  # relative defaults are relative to the project root too
        if name not in coerced and getattr(defaults, name) is not None:
            coerced[name] = (root / getattr(defaults, name)).resolve()
    params = StudyParams(**coerced)
    _validate(params, path)
    return params


def _validate(p: StudyParams, path: Path | None) -> None:
    where = f"{path}: " if path is not None else ""
    bad_organs = sorted(set(p.organs) - set(ORGANS))
    if bad_organs:
        raise ValueError(f"{where}unknown organ(s) {bad_organs}; study organs: {list(ORGANS)}")
    bad = sorted(set(p.ablation_approaches) - set(p.levels))
    if bad:
        raise ValueError(f"{where}ablation_approaches {bad} not among levels {list(p.levels)}")
    if p.dataset_version not in ("v1", "v2"):
        raise ValueError(f"{where}dataset_version must be 'v1' or 'v2', got {p.dataset_version!r}")
    if not 0 < p.negative_min_distance <= p.negative_max_distance:
        raise ValueError(f"{where}need 0 < negative_min_distance <= negative_max_distance")
    if p.modality not in ("ct", "mr"):
        raise ValueError(f"{where}modality must be 'ct' or 'mr', got {p.modality!r}")
    lo, hi = p.mr_percentiles
    if not 0 <= lo < hi <= 100:
        raise ValueError(f"{where}mr_percentiles must satisfy 0 <= low < high <= 100, got {p.mr_percentiles}")
    if p.window_width <= 0:
        raise ValueError(f"{where}window_width must be positive")
