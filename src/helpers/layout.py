"""Where each stage writes its products, in one place.

``outputs/<run name>/`` holds data products that later notebooks read;
``reports/<run name>/`` holds the rendered notebooks, figures and tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    """File layout of one run."""

    run_dir: Path
    report_dir: Path

    # -- notebook 01 -------------------------------------------------------
    @property
    def scans(self) -> Path:
        return self.run_dir / "scans.csv"

    @property
    def manifest(self) -> Path:
        return self.run_dir / "manifest.csv"

    @property
    def flow(self) -> Path:
        return self.run_dir / "flow.csv"

    @property
    def demographics(self) -> Path:
        return self.run_dir / "demographics.csv"

    # -- notebook 02 -------------------------------------------------------
    @property
    def geometry(self) -> Path:
        return self.run_dir / "geometry.csv"

    @property
    def preprocess_errors(self) -> Path:
        return self.run_dir / "preprocess_errors.csv"

    def frames_dir(self, scan_id: str) -> Path:
        return self.run_dir / "frames" / scan_id

    # -- notebook 03 -------------------------------------------------------
    @property
    def predictions_dir(self) -> Path:
        return self.run_dir / "predictions"

    @property
    def results(self) -> Path:
        return self.run_dir / "results.csv"

    # -- notebook 04 -------------------------------------------------------
    @property
    def metrics(self) -> Path:
        return self.run_dir / "metrics.csv"

    # -- reports -----------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        return self.report_dir / "figures"

    @property
    def tables_dir(self) -> Path:
        return self.report_dir / "tables"

    def ensure(self) -> "RunLayout":
        """Create the run's folders; returns self."""
        for d in (self.run_dir, self.figures_dir, self.tables_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self
