"""The paper's figures, drawn from the tables the notebooks write.

Every function returns a matplotlib ``Figure`` and takes the figure title from
the caller, who stamps it (:func:`helpers.reporting.stamp_title`) when the run
used random weights or model-made labels.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

APPROACH_COLORS = {"caudal": "#4c72b0", "mid": "#55a868", "cranial": "#c44e52"}


def flow_diagram(flow: pd.DataFrame, title: str) -> plt.Figure:
    """Figure 1: the selection steps as a vertical flow of boxes with counts."""
    n = len(flow)
    fig, ax = plt.subplots(figsize=(6.5, 0.75 * n + 1.2))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, n - 0.3)
    for i, (step, count) in enumerate(zip(flow["step"], flow["count"])):
        y = n - 1 - i
        ax.text(
            0.5, y, f"{step}\nn = {count}", ha="center", va="center", fontsize=10,
            bbox={"boxstyle": "round,pad=0.4", "fc": "#eef3fa", "ec": "#4c72b0"},
        )
        if i < n - 1:
            ax.annotate("", xy=(0.5, y - 0.62), xytext=(0.5, y - 0.38), arrowprops={"arrowstyle": "->", "color": "#555"})
    ax.set_title(title, fontsize=11)
    return fig


def area_levels(areas: pd.DataFrame, organs: Sequence[str], levels: Sequence[str], title: str) -> plt.Figure:
    """Supplemental Figure 1: mean cross-sectional area (voxels) per organ and level, SD bars.

    ``areas`` has columns organ, level, mean_area, sd_area, n
    (:func:`helpers.geometry.area_table`). Organs get their own panels, since
    their areas differ by orders of magnitude.
    """
    ncol = 4
    nrow = int(np.ceil(len(organs) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.6 * nrow), squeeze=False)
    for ax, organ in zip(axes.flat, organs):
        sub = areas[areas["organ"] == organ].set_index("level").reindex(levels)
        x = np.arange(len(levels))
        ax.bar(
            x, sub["mean_area"], yerr=sub["sd_area"].fillna(0), capsize=3,
            color=[APPROACH_COLORS.get(lv, "#888") for lv in levels],
        )
        ax.set_xticks(x, levels)
        ax.set_title(f"{organ} (n={int(sub['n'].max()) if sub['n'].notna().any() else 0})", fontsize=9)
        ax.set_ylabel("area (voxels)", fontsize=8)
    for ax in list(axes.flat)[len(organs):]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def dice_boxplots(
    metrics: pd.DataFrame,
    organs: Sequence[str],
    hue: str,
    hue_order: Sequence,
    title: str,
    palette: Mapping | None = None,
) -> plt.Figure:
    """Box plots of Dice per organ, split by ``hue`` (Figure 3: approach; Supp. Fig. 2: negatives)."""
    fig, ax = plt.subplots(figsize=(11, 4.2))
    data = metrics[metrics["organ"].isin(organs)]
    sns.boxplot(
        data=data, x="organ", y="dice", hue=hue, order=list(organs), hue_order=list(hue_order),
        palette=palette, ax=ax, fliersize=2,
    )
    sns.stripplot(
        data=data, x="organ", y="dice", hue=hue, order=list(organs), hue_order=list(hue_order),
        dodge=True, ax=ax, color="k", size=3, legend=False,
    )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("")
    ax.set_ylabel("Dice")
    ax.tick_params(axis="x", rotation=20)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig
