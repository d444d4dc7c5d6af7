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


# -- Figures 4 and 5: 3D renders and start slices ------------------------------
#
# Masks are canonical RAS+ arrays (see helpers.volumes): array axis 0 -> patient's
# right, 1 -> anterior, 2 -> superior. 3D renders are drawn in mm with z (superior)
# up, seen from the front (anterior), the patient's right on the viewer's left.
# Slice images are display images (helpers.volumes.slice_to_image): anterior at
# the top, patient's right on the left, points (x, y) = (column, row).

GT_COLOR = "#2ca02c"
PRED_COLOR = "#ffd700"
RENDER_GT_COLOR = "#2e8b57"
RENDER_PRED_COLOR = "#e69f00"
POSITIVE_COLOR = "#e41a1c"
NEGATIVE_COLOR = "#377eb8"


def _dice_text(dice: float | None) -> str:
    return "Dice n/a" if dice is None or pd.isna(dice) else f"Dice {float(dice):.3f}"


def mask_bounds_mm(masks: Sequence[np.ndarray], spacing) -> tuple[tuple[float, float], ...] | None:
    """Bounding box (mm, voxel centres) of the union of ``masks``; None when all are empty."""
    lo, hi = None, None
    for m in masks:
        m = np.asarray(m, dtype=bool)
        if not m.any():
            continue
        idx = np.nonzero(m)
        mlo = np.array([i.min() for i in idx])
        mhi = np.array([i.max() for i in idx])
        lo = mlo if lo is None else np.minimum(lo, mlo)
        hi = mhi if hi is None else np.maximum(hi, mhi)
    if lo is None:
        return None
    sp = np.asarray(spacing, dtype=float)
    return tuple((float((lo[k] - 0.5) * sp[k]), float((hi[k] + 0.5) * sp[k])) for k in range(3))


def render_3d(
    ax,
    mask: np.ndarray,
    spacing,
    color: str = RENDER_PRED_COLOR,
    alpha: float = 0.9,
    *,
    bounds: Sequence[tuple[float, float]] | None = None,
    step_size: int = 1,
    elev: float = 10.0,
    azim: float = 90.0,
    zoom: float = 1.15,
) -> None:
    """Draw a 3D surface of ``mask`` (canonical RAS+) on the 3D axes ``ax``.

    The surface is :func:`skimage.measure.marching_cubes` at level 0.5 with the
    voxel ``spacing`` (mm), so shapes keep their true proportions. The mask is
    cropped to its bounding box and padded by one voxel, so an organ touching
    the volume's border still gets a closed surface. ``bounds`` ((x0, x1),
    (y0, y1), (z0, z1)) in mm fixes the axes' extent (e.g. shared by a ground
    truth and its prediction); default: the mask's own box. The default view
    is from the front with z (superior) up and the patient's right on the
    left; ``zoom`` enlarges the drawing within its axes. An empty mask
    draws the word "empty".
    """
    from skimage.measure import marching_cubes

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"render_3d: mask must be 3D, got shape {mask.shape}")
    sp = np.asarray(spacing, dtype=float)
    ax.set_axis_off()
    ax.view_init(elev=elev, azim=azim)
    if not mask.any():
        ax.text2D(0.5, 0.5, "empty", transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#555")
        return
    idx = np.nonzero(mask)
    lo = np.array([i.min() for i in idx])
    hi = np.array([i.max() for i in idx])
    crop = mask[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
    padded = np.pad(crop, 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=tuple(sp), step_size=max(1, int(step_size)))
    verts = verts + (lo - 1) * sp  # back to the full array's mm coordinates
    ax.plot_trisurf(
        verts[:, 0], verts[:, 1], faces, verts[:, 2], color=color, alpha=alpha, shade=True, linewidth=0,
        antialiased=False,
    )
    if bounds is None:
        bounds = mask_bounds_mm([mask], sp)
    (x0, x1), (y0, y1), (z0, z1) = bounds  # type: ignore[misc]
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_zlim(z0, z1)
    ax.set_box_aspect((max(x1 - x0, 1e-6), max(y1 - y0, 1e-6), max(z1 - z0, 1e-6)), zoom=zoom)
    # orientation: seen from the front, so the patient's right is on the left
    right_on_left = np.sin(np.deg2rad(azim)) > 0
    ax.text2D(0.08, 0.1, "R" if right_on_left else "L", transform=ax.transAxes, fontsize=8, color="#555")
    ax.text2D(0.92, 0.1, "L" if right_on_left else "R", transform=ax.transAxes, fontsize=8, color="#555", ha="right")


def best_cases_3d(cases: Sequence[Mapping], title: str, *, step_size: int = 1) -> plt.Figure:
    """Figure 4: the best case of each organ, ground truth (top) and prediction (bottom).

    Each case is a mapping with ``organ``, ``gt`` and ``pred`` (bool 3D
    canonical RAS+ arrays of one shape), ``spacing`` (mm) and ``dice``; the
    column title names the organ and its Dice (``Dice n/a`` when missing).
    Ground truth and prediction of one organ share the axes' extent.
    """
    n = len(cases)
    if n == 0:
        raise ValueError("best_cases_3d: no cases")
    fig = plt.figure(figsize=(2.4 * n + 0.6, 5.4))
    for col, case in enumerate(cases):
        gt = np.asarray(case["gt"], dtype=bool)
        pred = np.asarray(case["pred"], dtype=bool)
        bounds = mask_bounds_mm([gt, pred], case["spacing"])
        for row, (mask, color) in enumerate(((gt, RENDER_GT_COLOR), (pred, RENDER_PRED_COLOR))):
            ax = fig.add_subplot(2, n, row * n + col + 1, projection="3d")
            render_3d(ax, mask, case["spacing"], color, 0.9, bounds=bounds, step_size=step_size)
            if row == 0:
                ax.set_title(f"{case['organ']}\n{_dice_text(case.get('dice'))}", fontsize=9)
    fig.text(0.01, 0.72, "ground truth", rotation=90, va="center", fontsize=10, color=RENDER_GT_COLOR)
    fig.text(0.01, 0.28, "prediction", rotation=90, va="center", fontsize=10, color=RENDER_PRED_COLOR)
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.03, right=0.99, bottom=0.02, top=0.82, wspace=0.02, hspace=0.05)
    return fig


def start_slice_panel(
    ax,
    ct_slice_uint8_image: np.ndarray,
    gt_image: np.ndarray,
    pred_image: np.ndarray,
    points,
    labels,
    title: str,
    *,
    gt_color: str = GT_COLOR,
    pred_color: str = PRED_COLOR,
) -> None:
    """One start slice: the windowed CT, ground-truth and predicted outlines, the prompts.

    All arrays are display images (:func:`helpers.volumes.slice_to_image`:
    anterior at the top, the patient's right on the left); ``points`` are
    ``(x, y) = (column, row)`` of that image, ``labels`` 1 (positive, red) or
    0 (negative, blue). Empty masks simply draw no outline.
    """
    img = np.asarray(ct_slice_uint8_image)
    gt = np.asarray(gt_image, dtype=bool)
    pred = np.asarray(pred_image, dtype=bool)
    for name, a in (("gt_image", gt), ("pred_image", pred)):
        if a.shape != img.shape:
            raise ValueError(f"start_slice_panel: {name} has shape {a.shape}, the slice {img.shape}")
    ax.imshow(img, cmap="gray", vmin=0, vmax=255, origin="upper", interpolation="nearest")
    handles = []
    from matplotlib.lines import Line2D

    for mask, color, label in ((gt, gt_color, "ground truth"), (pred, pred_color, "prediction")):
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors=[color], linewidths=1.2)
        handles.append(Line2D([], [], color=color, lw=1.5, label=label + ("" if mask.any() else " (empty)")))
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    labs = np.asarray(labels).reshape(-1)
    if len(pts) != len(labs):
        raise ValueError(f"start_slice_panel: {len(pts)} points but {len(labs)} labels")
    for value, color, label in ((1, POSITIVE_COLOR, "positive point"), (0, NEGATIVE_COLOR, "negative point")):
        sel = labs == value
        if sel.any():
            ax.scatter(pts[sel, 0], pts[sel, 1], s=36, c=color, edgecolors="white", linewidths=0.9, zorder=3)
            handles.append(
                Line2D([], [], ls="", marker="o", markersize=6, markerfacecolor=color, markeredgecolor="white",
                       label=label)
            )
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)  # row 0 (anterior) at the top
    ax.set_xticks([])
    ax.set_yticks([])
    for x, y, s, ha, va in ((0.5, 0.99, "A", "center", "top"), (0.01, 0.5, "R", "left", "center"),
                            (0.99, 0.5, "L", "right", "center")):  # fmt: skip
        ax.text(x, y, s, transform=ax.transAxes, ha=ha, va=va, fontsize=8, color="white")
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.7)
    ax.set_title(title, fontsize=10)


def case_figure(panels: Sequence[Mapping], renders: Sequence[Mapping], title: str, *, step_size: int = 1) -> plt.Figure:
    """Figure 5: one case under several approaches.

    Top row: the start slice of each approach (:func:`start_slice_panel`);
    each panel is a mapping with ``image``, ``gt_image``, ``pred_image``,
    ``points``, ``labels`` and ``title``. Bottom row: 3D renders
    (:func:`render_3d`), e.g. the ground truth and each approach's
    prediction; each render is a mapping with ``mask``, ``spacing``,
    ``title`` and optional ``color``. All renders share one extent.
    """
    if not panels and not renders:
        raise ValueError("case_figure: nothing to draw")
    n_top, n_bottom = len(panels), len(renders)
    ncols = int(np.lcm(max(n_top, 1), max(n_bottom, 1)))
    nrows = int(n_top > 0) + int(n_bottom > 0)
    fig = plt.figure(figsize=(4.2 * max(n_top, n_bottom * 0.85, 1), 4.0 * nrows + 0.6))
    gs = fig.add_gridspec(nrows, ncols, height_ratios=[1.15, 1.0][:nrows] if nrows == 2 else None)
    row = 0
    if n_top:
        w = ncols // n_top
        for i, p in enumerate(panels):
            ax = fig.add_subplot(gs[row, i * w : (i + 1) * w])
            start_slice_panel(ax, p["image"], p["gt_image"], p["pred_image"], p["points"], p["labels"], p["title"])
        row += 1
    if n_bottom:
        w = ncols // n_bottom
        spacing = renders[0]["spacing"]
        bounds = mask_bounds_mm([r["mask"] for r in renders], spacing)
        for i, r in enumerate(renders):
            ax = fig.add_subplot(gs[row, i * w : (i + 1) * w], projection="3d")
            render_3d(ax, r["mask"], r["spacing"], r.get("color", RENDER_PRED_COLOR), r.get("alpha", 0.9),
                      bounds=bounds, step_size=step_size)
            ax.set_title(r["title"], fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
