"""Run the study notebooks in order with one parameter file.

Usage::

    python -m helpers.run params/smoke.yaml            # notebooks 01..05
    python -m helpers.run params/smoke.yaml --only 06  # the explorer, headless
    python -m helpers.run params/sample.yaml --only 01 02

Each notebook is executed by papermill with ``params_file`` injected and
written, executed, to ``reports/<run name>/<notebook>.ipynb`` plus an HTML
copy. Finished work in ``outputs/<run name>/`` is reused, so a re-run with
unchanged inputs only re-renders the reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from helpers.params import StudyParams, load_params

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
#: The study proper; later numbers (06, the explorer) run only when asked for with --only.
STUDY = ("01", "02", "03", "04", "05")


def study_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR, only: Sequence[str] | None = None) -> list[Path]:
    """The numbered notebooks (``NN_*.ipynb``) in order: the study (:data:`STUDY`)
    by default, or those numbered in ``only``."""
    nbs = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    wanted = {o.zfill(2) for o in only} if only else set(STUDY)
    unknown = wanted - {p.name[:2] for p in nbs}
    if unknown:
        raise ValueError(f"no notebook numbered {sorted(unknown)} in {notebooks_dir}")
    return [p for p in nbs if p.name[:2] in wanted]


def preflight(params: StudyParams) -> None:
    """Fail early, with a clear message, when the model weights cannot be had."""
    from helpers.download import ChecksumError
    from helpers.models import MODELS, resolve_checkpoint

    try:
        resolve_checkpoint(params.model, params.checkpoint, params.cache_dir)
    except FileNotFoundError as exc:
        raise SystemExit(f"The checkpoint file given in the parameters does not exist: {exc}") from exc
    except ChecksumError as exc:
        raise SystemExit(f"The downloaded SAM 2 checkpoint is not the pinned file, refused: {exc}") from exc
    except OSError as exc:
        raise SystemExit(
            f"Cannot download the SAM 2 checkpoint of model {params.model!r} from "
            f"{MODELS[params.model].url}: {exc}\n"
            "Without internet access, run the smoke configuration instead: `make smoke` or "
            "`python -m helpers.run params/smoke.yaml` (random weights: a pipeline check, not results)."
        ) from exc


def export_html(notebook: Path) -> Path:
    """Render an executed notebook to HTML beside it."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    out = notebook.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def run(params_file: str | Path, only: Sequence[str] | None = None, *, html: bool = True) -> list[Path]:
    """Execute the notebooks with ``params_file``; returns the executed copies."""
    import papermill as pm

    params_file = Path(params_file).resolve()
    params = load_params(params_file)
    nbs = study_notebooks(only=only)
    if any(nb.name[:2] >= "03" for nb in nbs):
        preflight(params)
    params.report_dir.mkdir(parents=True, exist_ok=True)
    timings = {}
    outputs = []
    for nb in nbs:
        out = params.report_dir / nb.name
        print(f"[{params.run_name}] {nb.name} -> {out}", flush=True)
        t0 = time.perf_counter()
        pm.execute_notebook(
            str(nb),
            str(out),
            parameters={"params_file": str(params_file)},
            cwd=str(nb.parent),
            progress_bar=False,
        )
        timings[nb.name] = round(time.perf_counter() - t0, 1)
        if html:
            export_html(out)
        outputs.append(out)
    info = params.report_dir / "run_info.json"
    info.write_text(json.dumps({"params_file": str(params_file), "seconds": timings}, indent=1))
    return outputs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("params_file", help="a parameter file, e.g. params/smoke.yaml")
    ap.add_argument("--only", nargs="+", metavar="NN", help="run only these notebook numbers, e.g. 01 02")
    ap.add_argument("--no-html", action="store_true", help="skip the HTML copies")
    args = ap.parse_args(argv)
    run(args.params_file, args.only, html=not args.no_html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
