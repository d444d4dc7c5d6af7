"""Stamps, provenance and saved tables: random weights and model-made labels are always said."""

from __future__ import annotations

import hashlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from helpers.models import MODELS  # noqa: E402
from helpers.params import load_params  # noqa: E402
from helpers.reporting import (  # noqa: E402
    MODEL_LABELS_STAMP,
    RANDOM_WEIGHTS_STAMP,
    checkpoint_digest,
    report_header,
    save_figure,
    save_table,
    stamp_title,
)

from conftest import ROOT  # noqa: E402

SMOKE, SAMPLE = ROOT / "params" / "smoke.yaml", ROOT / "params" / "sample.yaml"


def test_header_puts_the_warnings_first():
    head = report_header(load_params(SMOKE), "04", model_labels=True)
    first = head.split("| provenance")[0]
    assert RANDOM_WEIGHTS_STAMP in first and MODEL_LABELS_STAMP in first
    real = report_header(load_params(SAMPLE), "04", model_labels=False)
    assert RANDOM_WEIGHTS_STAMP not in real and MODEL_LABELS_STAMP not in real
    assert "git_commit" in real and "version_torch" in real and "checkpoint_sha256" in real


def test_checkpoint_digest_without_loading_the_model(tmp_path):
    assert checkpoint_digest(load_params(SMOKE)).startswith("n/a")
    sample = load_params(SAMPLE)
    assert checkpoint_digest(sample) == MODELS[sample.model].sha256
    ckpt = tmp_path / "medsam2.pt"
    ckpt.write_bytes(b"weights")
    assert checkpoint_digest(load_params(SAMPLE, checkpoint=str(ckpt))) == hashlib.sha256(b"weights").hexdigest()


def test_saved_tables_and_titles_carry_the_stamps(tmp_path):
    p = load_params(SMOKE)
    df = pd.DataFrame({"organ": ["liver"], "mean": [np.nan], "significant": pd.array([pd.NA], dtype="boolean")})
    paths = save_table(df, "t", tmp_path, caption="Table X.", params=p, model_labels=True)
    csv = paths["csv"].read_text()
    assert csv.startswith(f"# {RANDOM_WEIGHTS_STAMP}\n# {MODEL_LABELS_STAMP}\n")
    assert pd.read_csv(paths["csv"], comment="#").columns.tolist() == ["organ", "mean", "significant"]
    md = paths["md"].read_text()
    assert RANDOM_WEIGHTS_STAMP in md and "n/a" in md and "nan" not in md
    assert RANDOM_WEIGHTS_STAMP in paths["tex"].read_text()
    assert RANDOM_WEIGHTS_STAMP in stamp_title("Figure 3", p, model_labels=False)
    assert stamp_title("Figure 3", load_params(SAMPLE), model_labels=False) == "Figure 3"


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = save_figure(fig, "f", tmp_path)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["pdf"].read_bytes()[:4] == b"%PDF"
