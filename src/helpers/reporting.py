"""Report furniture: provenance header, warning stamps, saving tables and figures.

Anything computed with random weights is not a result; anything computed
against the embedded sample's labels is measured against a model, not a
human. Both facts are stamped at the top of every report
(:func:`report_header`), in every saved table (:func:`save_table`) and in
figure titles (:func:`stamp_title`).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Iterable

import pandas as pd

from helpers.files import atomic_write
from helpers.params import StudyParams

RANDOM_WEIGHTS_STAMP = "RANDOM WEIGHTS - NOT RESULTS"
MODEL_LABELS_STAMP = "labels are TotalSegmentator model output, not manual ground truth"
_PACKAGES = ("sam2", "torch", "numpy", "scipy", "pandas", "nibabel", "matplotlib", "seaborn", "papermill")


def stamps(params: StudyParams, model_labels: bool) -> list[str]:
    """The warnings that apply to a run's outputs (empty for a real run)."""
    out = []
    if params.random_weights:
        out.append(RANDOM_WEIGHTS_STAMP)
    if model_labels:
        out.append(MODEL_LABELS_STAMP)
    return out


def stamp_title(title: str, params: StudyParams, model_labels: bool) -> str:
    """A figure title with the run's warnings appended on a second line."""
    s = stamps(params, model_labels)
    return title if not s else f"{title}\n[{'; '.join(s)}]"


def git_commit(cwd: Path | None = None) -> str:
    """``<sha>`` of HEAD (``+dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the results."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def checkpoint_digest(params: StudyParams) -> str:
    """The sha256 of the run's checkpoint, known without loading the model.

    Official checkpoints: the pinned registry hash (downloads are checked
    against it); a local file: its hash; random weights: n/a.
    """
    from helpers.download import sha256sum
    from helpers.models import MODELS

    if params.random_weights:
        return "n/a (random weights)"
    if params.checkpoint == "official":
        return MODELS[params.model].sha256
    path = Path(params.checkpoint)
    return sha256sum(path) if path.is_file() else f"n/a ({path} not found)"


def provenance(params: StudyParams, *, device: str | None = None, checkpoint_sha256: str | None = None) -> dict:
    """Everything needed to say where a report came from."""
    return {
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_name": params.run_name,
        "model": params.model,
        "checkpoint": params.checkpoint,
        "weights": "random (seeded; not results)" if params.random_weights else "pretrained",
        "checkpoint_sha256": checkpoint_sha256 or checkpoint_digest(params),
        "image_size": params.image_size,
        "device": device or params.device,
        "git_commit": git_commit(Path(__file__).parent),
        "host": platform.node(),
        **{f"version_{k}": v for k, v in package_versions().items()},
    }


def report_header(
    params: StudyParams,
    title: str,
    *,
    model_labels: bool,
    device: str | None = None,
    checkpoint_sha256: str | None = None,
) -> str:
    """Markdown header of a report: warnings first, then provenance and parameters."""
    lines = [f"# {title}", ""]
    for s in stamps(params, model_labels):
        lines += [f"> **WARNING: {s}.**", ">"]
    if lines[-1] == ">":
        lines[-1] = ""
    prov = provenance(params, device=device, checkpoint_sha256=checkpoint_sha256)
    lines += ["| provenance | |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in prov.items()]
    lines += ["", "<details><summary>parameters</summary>", "", "```yaml"]
    lines += [f"{k}: {v}" for k, v in params.as_dict().items()]
    lines += ["```", "</details>"]
    return "\n".join(lines)


def save_table(
    df: pd.DataFrame,
    name: str,
    tables_dir: Path,
    *,
    caption: str,
    params: StudyParams,
    model_labels: bool,
) -> dict[str, Path]:
    """Save a table as CSV, Markdown and LaTeX; the run's warnings go with it.

    The CSV gets the warnings as leading ``#`` comment lines (read it back with
    ``pd.read_csv(path, comment="#")``); Markdown and LaTeX get them in the
    caption.
    """
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    warn = stamps(params, model_labels)
    full_caption = caption + "".join(f" [{s}]" for s in warn)
    paths = {ext: tables_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")}
    def write_stamped_csv(tmp: Path) -> None:
        with tmp.open("w") as fh:
            fh.writelines(f"# {s}\n" for s in warn)
            df.to_csv(fh, index=False)

    atomic_write(paths["csv"], write_stamped_csv)  # notebook 05 reads these
    shown = df.astype(object).where(df.notna(), None)  # NaN / <NA> print as "n/a"
    md = shown.to_markdown(index=False, floatfmt=".4g", missingval="n/a")
    paths["md"].write_text(f"**{full_caption}**\n\n{md}\n")
    latex = df.to_latex(index=False, caption=full_caption, label=f"tab:{name}", na_rep="n/a", escape=True)
    paths["tex"].write_text(latex)
    return paths


def save_figure(fig, name: str, figures_dir: Path) -> dict[str, Path]:
    """Save a matplotlib figure as PNG (150 dpi) and PDF."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: figures_dir / f"{name}.{ext}" for ext in ("png", "pdf")}
    fig.savefig(paths["png"], dpi=150, bbox_inches="tight")
    fig.savefig(paths["pdf"], bbox_inches="tight")
    return paths
