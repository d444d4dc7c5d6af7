"""Interactive exploration of one scan (notebook 06): the logic, and its widget UI.

:class:`Explorer` holds one scan (image + organ masks, canonical RAS+, see
:mod:`helpers.volumes`) and the state a user changes: organ, approach, seed,
the slice on view, and the point prompts. It can

* draw the paper's automatic prompts for an organ, approach and seed on the
  approach's start slice (:func:`helpers.geometry.percentile_slice`,
  :func:`helpers.prompts.sample_prompts` with :func:`helpers.prompts.prompt_rng`:
  the same points the batch run (notebook 03) uses for that seed);
* add or remove single points at ``(x, y) = (column, row)`` of the display
  image (:func:`helpers.volumes.slice_to_image`);
* run SAM 2 from the prompt slice towards both ends of the slab
  (:class:`helpers.inference.ScanVideo` on frames written by
  :func:`helpers.preprocess.write_frames` into a scratch folder) and score
  the prediction with :func:`helpers.metrics.dice`.

:func:`build_explorer_ui` wraps an explorer in ipywidgets: organ / approach
dropdowns, seed, slice slider, buttons, and the slice as an interactive
matplotlib canvas (ipympl) where a click adds or removes a point. Without
ipympl the slice is shown as a static image (no clicking).

Frames: the slab of all the scan's loaded organ masks, windowed as in
notebook 02 (CT window, or the MR percentile window). A prompt slice outside
the slab cannot be run. Random weights (``checkpoint: random``, the smoke
default) are allowed here only to exercise the tool headless; the UI then
shows :data:`helpers.reporting.RANDOM_WEIGHTS_STAMP`.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import ipywidgets as widgets
import numpy as np

from helpers.geometry import percentile_slice
from helpers.grid import case_prompts, frames_to_volume
from helpers.metrics import dice
from helpers.params import StudyParams
from helpers.preprocess import ScanData, slab_range, write_frames
from helpers.prompts import Prompts
from helpers.readers import TOTAL_MR_LABEL_IDS, intensity_to_uint8
from helpers.sample import V2_LABEL_IDS
from helpers.reporting import MODEL_LABELS_STAMP, RANDOM_WEIGHTS_STAMP
from helpers.volumes import Volume, check_same_grid, load_volume, slice_to_image

#: Label maps the explorer can split into organ masks: name -> study organ -> label id.
LABEL_MAPS: dict[str, dict[str, int]] = {
    "total": V2_LABEL_IDS,  # TotalSegmentator v2 "total" (CT)
    "total_mr": TOTAL_MR_LABEL_IDS,
}


@dataclass(frozen=True)
class ExploreResult:
    """One SAM 2 run of the explorer."""

    organ: str
    prompt_slice: int  #: canonical z of the prompts
    prompts: Prompts
    prediction: np.ndarray  #: bool, canonical grid of the scan
    dice: float  #: 3D Dice against the organ's mask (NaN when both are empty)
    seconds: float
    slab: tuple[int, int]  #: first and last slice of the frames
    frames_tracked: int  #: frames SAM 2 returned a mask for (both directions)


class Explorer:
    """One scan, its organ masks, and the explorer's state (see the module docstring).

    Parameters
    ----------
    scan
        The image (``scan.ct``: CT in HU or an MR volume) and bool organ masks
        on its grid, canonical RAS+.
    params
        The run's parameters: window, prompt counts and distances, levels,
        seed, model, checkpoint, image size, frames per direction.
    modality
        ``"ct"`` (window ``params.window_level``/``window_width``) or ``"mr"``
        (percentile window); default ``params.modality`` when the parameters
        have it, else ``"ct"``.
    mr_percentiles
        (low, high) percentiles of the MR window; default
        ``params.mr_percentiles`` when present, else (0.5, 99.5).
    model_labels
        The masks are model output (stamped in the UI).
    work_dir
        Folder for the SAM 2 frames; default a temporary folder removed when
        the explorer is garbage-collected.
    predictor, model_info
        A built SAM 2 predictor to reuse; default: built on the first run
        with :func:`helpers.grid.load_model`.
    """

    def __init__(
        self,
        scan: ScanData,
        params: StudyParams,
        *,
        modality: str | None = None,
        mr_percentiles: Sequence[float] | None = None,
        model_labels: bool = False,
        work_dir: str | Path | None = None,
        predictor=None,
        model_info=None,
        source: str = "",
    ) -> None:
        self.params = params
        self.modality = (modality or params.modality).lower()
        if self.modality not in ("ct", "mr"):
            raise ValueError(f"unknown modality {self.modality!r}; expected 'ct' or 'mr'")
        self.mr_percentiles = tuple(float(q) for q in (mr_percentiles or params.mr_percentiles))
        self.model_labels = bool(model_labels)
        self.source = source
        if work_dir is None:
            work_dir = tempfile.mkdtemp(prefix="sam2-explore-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, work_dir, True)
        self.work_dir = Path(work_dir)
        self.predictor = predictor
        self.model_info = model_info
        self._video = None
        self._video_key: tuple | None = None
        self.seed = int(params.seed)
        self.approach = params.approaches[0]
        self.negatives = True
        self._set_scan(scan)

    # -- construction ------------------------------------------------------
    @classmethod
    def from_dataset(
        cls, params: StudyParams, scan_id: str | None = None, organs: Sequence[str] | None = None, **kwargs
    ) -> "Explorer":
        """A scan of the run's dataset (``params.dataset_root``, TotalSegmentator layout).

        ``scan_id`` defaults to the first scan of ``meta.csv``; organs default
        to the run's organs, and organs whose mask file is missing or empty
        are left out.
        """
        from helpers import dataset

        root = Path(params.dataset_root)
        meta = dataset.read_meta(root)
        ids = sorted(meta["image_id"])
        if not ids:
            raise ValueError(f"{root}/meta.csv lists no scan")
        scan_id = scan_id or ids[0]
        if scan_id not in ids:
            raise ValueError(f"scan {scan_id!r} is not in {root}/meta.csv (scans: {ids[:10]}...)")
        image = load_volume(dataset.image_path(root, scan_id))
        masks = {}
        for organ in organs or params.organs:
            path = dataset.mask_path(root, scan_id, organ)
            if not path.is_file():
                continue
            vol = load_volume(path)
            check_same_grid(image, vol)
            if (vol.data > 0).any():
                masks[organ] = vol.data > 0
        kwargs.setdefault("model_labels", dataset.model_labels(meta))
        ex = cls(ScanData(scan_id=scan_id, ct=image, masks=masks), params, source=str(root / scan_id), **kwargs)
        ex.scan_ids = ids
        ex._requested_organs = list(organs) if organs else None
        return ex

    @classmethod
    def from_files(
        cls,
        image: str | Path,
        labels: str | Path,
        params: StudyParams,
        *,
        label_map: str | Mapping[str, int] = "total",
        organs: Sequence[str] | None = None,
        scan_id: str | None = None,
        **kwargs,
    ) -> "Explorer":
        """An image (NIfTI file or DICOM series folder) with a label map on its grid.

        ``label_map`` names a map of :data:`LABEL_MAPS` (``"total"`` for CT,
        ``"total_mr"`` for TotalSegmentator MR labels) or gives organ -> id.
        """
        ids = LABEL_MAPS[label_map] if isinstance(label_map, str) else dict(label_map)
        img = load_volume(image)
        lab = load_volume(labels)
        check_same_grid(img, lab)
        lab_data = np.asarray(lab.data)
        masks = {}
        for organ in organs or [o for o in params.organs if o in ids]:
            if organ not in ids:
                raise ValueError(f"organ {organ!r} has no label id in the label map {sorted(ids)}")
            m = lab_data == ids[organ]
            if m.any():
                masks[organ] = m
        sid = scan_id or Path(image).name.split(".")[0]
        return cls(ScanData(scan_id=sid, ct=img, masks=masks), params, source=str(image), **kwargs)

    def _set_scan(self, scan: ScanData) -> None:
        if not scan.masks:
            raise ValueError(f"scan {scan.scan_id}: no non-empty organ mask to explore")
        self.scan = scan
        self._image8: np.ndarray | None = None
        self._video = None
        self._video_key = None
        self.organ = next(iter(scan.masks))
        self.points: list[tuple[float, float]] = []
        self.labels: list[int] = []
        self.result: ExploreResult | None = None
        self.z = self.start_slice()
        self.prompt_slice = self.z

    def load_scan(self, scan_id: str) -> None:
        """Switch to another scan of the same dataset (explorers made by :meth:`from_dataset`)."""
        other = type(self).from_dataset(
            self.params, scan_id, organs=getattr(self, "_requested_organs", None), modality=self.modality,
            mr_percentiles=self.mr_percentiles, work_dir=self.work_dir, predictor=self.predictor,
            model_info=self.model_info,
        )
        self.source, self.model_labels = other.source, other.model_labels
        self._set_scan(other.scan)

    # -- what is on view ---------------------------------------------------
    @property
    def volume(self) -> Volume:
        return self.scan.ct

    @property
    def organs(self) -> list[str]:
        """Organs with a non-empty mask in this scan."""
        return list(self.scan.masks)

    @property
    def n_slices(self) -> int:
        return int(self.volume.shape[2])

    @property
    def image8(self) -> np.ndarray:
        """The whole volume in 8 bits, exactly as SAM 2's frames are made."""
        if self._image8 is None:
            self._image8 = intensity_to_uint8(
                self.volume.data, self.modality, level=self.params.window_level,
                width=self.params.window_width, percentiles=self.mr_percentiles,
            )
        return self._image8

    @property
    def mask(self) -> np.ndarray:
        """The current organ's ground-truth mask (canonical)."""
        return self.scan.masks[self.organ]

    def slice_image(self, z: int | None = None) -> np.ndarray:
        """Display image (uint8) of slice ``z`` (default: the slice on view)."""
        return slice_to_image(self.image8[:, :, self._z(z)])

    def gt_image(self, z: int | None = None) -> np.ndarray:
        return slice_to_image(self.mask[:, :, self._z(z)])

    def pred_image(self, z: int | None = None) -> np.ndarray | None:
        """The prediction on slice ``z`` as a display image (None before a run)."""
        if self.result is None or self.result.organ != self.organ:
            return None
        return slice_to_image(self.result.prediction[:, :, self._z(z)])

    def _z(self, z: int | None) -> int:
        z = self.z if z is None else int(z)
        if not 0 <= z < self.n_slices:
            raise ValueError(f"slice {z} outside 0..{self.n_slices - 1}")
        return z

    def set_slice(self, z: int) -> None:
        self.z = self._z(z)

    def start_slice(self, approach: str | None = None) -> int:
        """The approach's start slice of the current organ (percentile of its z extent)."""
        approach = approach or self.approach
        if approach not in self.params.levels:
            raise ValueError(f"unknown approach {approach!r}; approaches: {list(self.params.levels)}")
        return percentile_slice(self.mask, self.params.levels[approach])

    def select(self, organ: str | None = None, approach: str | None = None, seed: int | None = None) -> None:
        """Choose organ / approach / seed; the view goes to the start slice, prompts are cleared."""
        if organ is not None:
            if organ not in self.scan.masks:
                raise ValueError(f"organ {organ!r} has no mask in scan {self.scan.scan_id}; organs: {self.organs}")
            if organ != self.organ:
                self.result = None
            self.organ = organ
        if approach is not None:
            self.start_slice(approach)  # validates
            self.approach = approach
        if seed is not None:
            self.seed = int(seed)
        self.clear_points()
        self.z = self.prompt_slice = self.start_slice()

    # -- prompts ------------------------------------------------------------
    @property
    def prompts(self) -> Prompts:
        """The current points as :class:`~helpers.prompts.Prompts` (on :attr:`prompt_slice`)."""
        pts = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
        return Prompts(points=pts, labels=np.asarray(self.labels, dtype=np.int32))

    def generate_prompts(
        self, approach: str | None = None, seed: int | None = None, negatives: bool | None = None
    ) -> Prompts:
        """The paper's automatic prompts for the current organ on the approach's start slice.

        Same draw as the batch run for (seed, scan, organ, approach); with
        ``negatives=False`` the positives only (the ablation). Replaces the
        current points and moves the view to the start slice.
        """
        if approach is not None:
            self.start_slice(approach)
            self.approach = approach
        if seed is not None:
            self.seed = int(seed)
        if negatives is not None:
            self.negatives = bool(negatives)
        z = self.start_slice()
        prompts = case_prompts(dataclasses.replace(self.params, seed=self.seed), self.scan, self.organ, self.approach, z)
        if not self.negatives:
            prompts = prompts.positives_only()
        self.points = [(float(x), float(y)) for x, y in prompts.points]
        self.labels = [int(v) for v in prompts.labels]
        self.z = self.prompt_slice = z
        return prompts

    def add_point(self, x: float, y: float, positive: bool = True) -> None:
        """Add a point at ``(x, y)`` (column, row) of the slice on view.

        Points belong to one slice: adding a point on another slice than the
        current prompt slice starts a new set of prompts there.
        """
        h, w = self.slice_image().shape
        if not (-0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5):
            raise ValueError(f"point ({x:.1f}, {y:.1f}) outside the {w}x{h} image")
        if self.z != self.prompt_slice:
            self.clear_points()
            self.prompt_slice = self.z
        self.points.append((float(x), float(y)))
        self.labels.append(1 if positive else 0)

    def remove_point(self, x: float, y: float, max_distance: float | None = None) -> bool:
        """Remove the point nearest ``(x, y)`` on the prompt slice; False when none is near.

        ``max_distance`` (pixels) defaults to 5% of the image's larger side.
        """
        if not self.points or self.z != self.prompt_slice:
            return False
        if max_distance is None:
            max_distance = 0.05 * max(self.slice_image().shape)
        d = np.hypot(*(np.asarray(self.points) - [x, y]).T)
        i = int(np.argmin(d))
        if d[i] > max_distance:
            return False
        del self.points[i], self.labels[i]
        return True

    def clear_points(self) -> None:
        self.points, self.labels = [], []
        self.prompt_slice = self.z

    # -- SAM 2 ---------------------------------------------------------------
    def frames_dir(self) -> Path:
        return self.work_dir / "frames" / self.scan.scan_id

    def _ensure_model(self) -> None:
        if self.predictor is None:
            from helpers.grid import load_model

            self.predictor, self.model_info = load_model(self.params)

    def _ensure_video(self) -> tuple[list[int], object]:
        from helpers.inference import ScanVideo

        p = self.params
        meta = write_frames(
            self.scan, self.frames_dir(), level=p.window_level, width=p.window_width, quality=p.jpeg_quality,
            modality=self.modality, percentiles=self.mr_percentiles,
        )
        key = (str(self.frames_dir()), tuple(meta["slices"]), self.modality, self.mr_percentiles, id(self.predictor))
        if self._video is None or self._video_key != key:
            self._video = ScanVideo(self.predictor, self.frames_dir(), reuse_features=True)
            self._video_key = key
        return meta["slices"], self._video

    def run(self) -> ExploreResult:
        """Run SAM 2 from the prompt slice both ways; the result also goes to :attr:`result`."""
        prompts = self.prompts
        if len(prompts.points) == 0:
            raise ValueError("no prompt points: generate prompts or click on the image first")
        z0, z1 = slab_range(self.scan.masks)
        if not z0 <= self.prompt_slice <= z1:
            raise ValueError(
                f"prompt slice {self.prompt_slice} is outside the frames (slices {z0}..{z1}, "
                "the slab of the scan's organs): put the prompts on a slice in that range"
            )
        self._ensure_model()
        slices, video = self._ensure_video()
        t0 = time.perf_counter()
        masks = video.segment(slices.index(self.prompt_slice), prompts, self.params.max_frames_per_direction)
        seconds = time.perf_counter() - t0
        pred = frames_to_volume(masks, slices, self.volume.shape).astype(bool)
        n = self.params.max_frames_per_direction
        start = slices.index(self.prompt_slice)
        tracked = len(slices) if n is None else (min(start + n, len(slices) - 1) - max(start - n, 0) + 1)
        self.result = ExploreResult(
            organ=self.organ,
            prompt_slice=self.prompt_slice,
            prompts=prompts,
            prediction=pred,
            dice=float(dice(pred, self.mask)),
            seconds=round(seconds, 3),
            slab=(int(slices[0]), int(slices[-1])),
            frames_tracked=int(tracked),
        )
        return self.result

    # -- texts ----------------------------------------------------------------
    @property
    def random_weights(self) -> bool:
        if self.model_info is not None:
            return bool(self.model_info.random_weights)
        return bool(self.params.random_weights)

    def stamps(self) -> list[str]:
        """Warnings that apply to what the explorer shows."""
        out = []
        if self.random_weights:
            out.append(RANDOM_WEIGHTS_STAMP)
        if self.model_labels:
            out.append(MODEL_LABELS_STAMP)
        return out

    def slice_dice(self, z: int | None = None) -> float | None:
        """2D Dice of the prediction on slice ``z`` (None before a run, NaN when both are empty)."""
        pred = self.pred_image(z)
        if pred is None:
            return None
        gt = self.gt_image(z)
        total = int(pred.sum()) + int(gt.sum())
        return float("nan") if total == 0 else 2.0 * int((pred & gt).sum()) / total

    def dice_text(self) -> str:
        """One line: the 3D Dice of the last run, or how to get one."""
        r = self.result
        if r is None or r.organ != self.organ:
            return f"Dice: no prediction for {self.organ} yet (press Run SAM 2)"
        d = "n/a" if np.isnan(r.dice) else f"{r.dice:.3f}"
        sd = self.slice_dice()
        sd_txt = "n/a" if sd is None or np.isnan(sd) else f"{sd:.3f}"
        return (
            f"Dice (3D, {r.organ}): {d} | slice {self.z}: {sd_txt} | prompts on slice {r.prompt_slice} "
            f"({r.prompts.n_positive}+ / {r.prompts.n_negative}-), {r.frames_tracked} frames tracked, {r.seconds:.1f} s"
        )

    def describe(self) -> str:
        """One line about the scan."""
        v = self.volume
        sp = " x ".join(f"{s:.2f}" for s in v.spacing)
        return (
            f"scan {self.scan.scan_id} ({self.modality.upper()}), {v.shape[0]} x {v.shape[1]} x {v.shape[2]} voxels "
            f"of {sp} mm; organs: {', '.join(self.organs)}"
        )


# -- drawing ------------------------------------------------------------------


def draw_slice(ax, explorer: Explorer, z: int | None = None) -> None:
    """Draw slice ``z`` of the explorer on ``ax``: image, outlines, prompt points."""
    from helpers.figures import GT_COLOR, NEGATIVE_COLOR, POSITIVE_COLOR, PRED_COLOR

    z = explorer._z(z)
    ax.clear()
    img = explorer.slice_image(z)
    ax.imshow(img, cmap="gray", vmin=0, vmax=255, origin="upper", interpolation="nearest")
    gt = explorer.gt_image(z)
    if gt.any():
        ax.contour(gt.astype(float), levels=[0.5], colors=[GT_COLOR], linewidths=1.2)
    pred = explorer.pred_image(z)
    if pred is not None and pred.any():
        ax.contour(pred.astype(float), levels=[0.5], colors=[PRED_COLOR], linewidths=1.2)
    if z == explorer.prompt_slice and explorer.points:
        pts, labs = explorer.prompts.points, explorer.prompts.labels
        for value, color in ((1, POSITIVE_COLOR), (0, NEGATIVE_COLOR)):
            sel = labs == value
            if sel.any():
                ax.scatter(pts[sel, 0], pts[sel, 1], s=40, c=color, edgecolors="white", linewidths=0.9, zorder=3)
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for x, y, s, ha, va in ((0.5, 0.99, "A", "center", "top"), (0.01, 0.5, "R", "left", "center"),
                            (0.99, 0.5, "L", "right", "center")):  # fmt: skip
        ax.text(x, y, s, transform=ax.transAxes, ha=ha, va=va, fontsize=8, color="white")
    prompt = " (prompt slice)" if z == explorer.prompt_slice and explorer.points else ""
    ax.set_title(
        f"{explorer.organ}, slice {z}/{explorer.n_slices - 1}{prompt}\n"
        "green: ground truth, yellow: SAM 2, red/blue: +/- points",
        fontsize=9,
    )


def render_3d_png(explorer: Explorer, *, size: tuple[float, float] = (5.0, 3.2), dpi: int = 90) -> bytes:
    """PNG of 3D renders: the organ's ground truth and, after a run, the prediction."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from helpers import figures

    gt = explorer.mask
    pred = explorer.result.prediction if explorer.result is not None and explorer.result.organ == explorer.organ else None
    masks = [("ground truth", gt, figures.RENDER_GT_COLOR)]
    if pred is not None:
        masks.append(("SAM 2", pred, figures.RENDER_PRED_COLOR))
    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    spacing = explorer.volume.spacing
    step = 1 if gt.sum() < 150_000 else 2
    bounds = figures.mask_bounds_mm([m for _, m, _ in masks], spacing)
    for i, (title, m, color) in enumerate(masks):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        figures.render_3d(ax, m, spacing, color, 0.9, bounds=bounds, step_size=step)
        ax.set_title(title, fontsize=9)
    if pred is None:
        ax = fig.add_subplot(1, 2, 2)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no prediction yet", ha="center", va="center", fontsize=9, color="#555")
    fig.suptitle(f"{explorer.organ} (3D)", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _figure_png(fig, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# -- widgets ------------------------------------------------------------------


def build_explorer_ui(explorer: Explorer, *, interactive: bool | None = None, figsize=(5.2, 5.6)):
    """The explorer's widget UI (an :class:`ExplorerUI`, an ipywidgets ``VBox``).

    ``interactive=None`` uses an ipympl canvas (click to add/remove points)
    when ipympl is installed, else a static image; ``False`` forces the
    static image.
    """
    return ExplorerUI(explorer, interactive=interactive, figsize=figsize)


class ExplorerUI(widgets.VBox):
    """Widgets bound to an :class:`Explorer`; see :func:`build_explorer_ui`."""

    def __init__(self, explorer: Explorer, *, interactive: bool | None = None, figsize=(5.2, 5.6)):
        from matplotlib.figure import Figure

        self.explorer = ex = explorer
        self._busy = False
        W = widgets
        stamps = ex.stamps()
        self.banner = W.HTML(
            "".join(
                f'<div style="background:#b00020;color:white;font-weight:bold;padding:4px 8px;'
                f'margin:2px 0;border-radius:3px">{s}</div>'
                for s in stamps
            )
        )
        self.banner.add_class("explorer-banner")
        self.info = W.HTML(f"<b>{ex.describe()}</b>")
        scan_ids = getattr(ex, "scan_ids", None)
        self.scan = W.Dropdown(options=scan_ids or [ex.scan.scan_id], value=ex.scan.scan_id, description="scan",
                               disabled=not scan_ids or len(scan_ids) < 2, layout=W.Layout(width="220px"))
        self.organ = W.Dropdown(options=ex.organs, value=ex.organ, description="organ",
                                layout=W.Layout(width="260px"))
        self.approach = W.Dropdown(options=list(ex.params.approaches), value=ex.approach,
                                   description="approach", layout=W.Layout(width="220px"))
        self.seed = W.IntText(value=ex.seed, description="seed", layout=W.Layout(width="160px"))
        self.negatives = W.Checkbox(value=ex.negatives, description="negative prompts", indent=False,
                                    layout=W.Layout(width="150px"))
        self.generate = W.Button(description="Generate prompts", icon="magic", button_style="info",
                                 layout=W.Layout(width="160px"))
        self.run_button = W.Button(description="Run SAM 2", icon="play", button_style="success",
                                   layout=W.Layout(width="120px"))
        self.clear = W.Button(description="Clear points", icon="eraser", layout=W.Layout(width="120px"))
        self.click_mode = W.ToggleButtons(options=["positive", "negative", "remove"], value="positive",
                                          description="click", style={"button_width": "80px"})
        self.slider = W.IntSlider(value=ex.z, min=0, max=ex.n_slices - 1, description="slice z",
                                  continuous_update=False, layout=W.Layout(width="420px"))
        self.prev = W.Button(icon="chevron-left", layout=W.Layout(width="36px"), tooltip="previous slice")
        self.next = W.Button(icon="chevron-right", layout=W.Layout(width="36px"), tooltip="next slice")
        self.to_prompt = W.Button(description="prompt slice", layout=W.Layout(width="110px"),
                                  tooltip="go to the slice holding the prompts")
        self.dice = W.HTML()
        self.dice.add_class("explorer-dice")
        self.status = W.HTML()
        self.render = W.Image(format="png")
        self.render.add_class("explorer-3d")

        self.figure = Figure(figsize=figsize)
        self.ax = self.figure.add_subplot(1, 1, 1)
        self.figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9)
        self.canvas_widget = None
        if interactive is not False:
            try:
                from ipympl.backend_nbagg import Canvas, FigureManager
            except ImportError:
                if interactive:
                    raise
            else:
                canvas = Canvas(self.figure)
                FigureManager(canvas, 0)
                canvas.header_visible = False
                canvas.footer_visible = False
                canvas.toolbar_visible = False
                canvas.resizable = False
                canvas.capture_scroll = True
                canvas.add_class("explorer-canvas")
                canvas.mpl_connect("button_press_event", self._on_click)
                self.canvas_widget = canvas
        if self.canvas_widget is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(self.figure)
            self.static = W.Image(format="png")
            self.static.add_class("explorer-canvas")
            view = W.VBox([self.static, W.HTML("<i>static view (no ipympl canvas): no clicking</i>")])
        else:
            self.static = None
            view = self.canvas_widget

        self.organ.observe(self._on_organ, names="value")
        self.approach.observe(self._on_approach, names="value")
        self.seed.observe(self._on_seed, names="value")
        self.negatives.observe(self._on_negatives, names="value")
        self.scan.observe(self._on_scan, names="value")
        self.slider.observe(self._on_slider, names="value")
        self.generate.on_click(self._action(self._generate))
        self.run_button.on_click(self._action(self._run))
        self.clear.on_click(self._action(self._clear))
        self.prev.on_click(lambda _b: self._step(-1))
        self.next.on_click(lambda _b: self._step(+1))
        self.to_prompt.on_click(lambda _b: self._goto(ex.prompt_slice))

        controls = W.VBox([
            W.HBox([self.scan, self.organ]),
            W.HBox([self.approach, self.seed, self.negatives]),
            W.HBox([self.generate, self.run_button, self.clear]),
            self.click_mode,
            W.HBox([self.prev, self.slider, self.next, self.to_prompt]),
            self.dice,
            self.status,
            self.render,
        ])
        super().__init__([self.banner, self.info, W.HBox([view, controls])])
        self.add_class("explorer-ui")
        self.redraw(render=True)

    # -- drawing --------------------------------------------------------
    def redraw(self, render: bool = False) -> None:
        ex = self.explorer
        draw_slice(self.ax, ex)
        if self.canvas_widget is not None:
            self.canvas_widget.draw_idle()
        else:
            self.static.value = _figure_png(self.figure)
        self.dice.value = f"<b>{ex.dice_text()}</b>"
        n_pos = sum(ex.labels)
        self.status.value = (
            f"{n_pos} positive, {len(ex.labels) - n_pos} negative point(s) on slice {ex.prompt_slice}"
        )
        if render:
            self.render.value = render_3d_png(ex)

    def _sync_controls(self) -> None:
        ex = self.explorer
        with self.slider.hold_trait_notifications():
            self.slider.max = ex.n_slices - 1
            self.slider.value = ex.z

    def _action(self, fn):
        def handler(_button=None):
            if self._busy:
                return
            self._busy = True
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - shown to the user, the UI stays alive
                self.redraw()
                self.status.value = f'<span style="color:#b00020">{type(exc).__name__}: {exc}</span>'
            finally:
                self._busy = False

        return handler

    # -- callbacks ------------------------------------------------------
    def _generate(self) -> None:
        ex = self.explorer
        ex.generate_prompts(self.approach.value, self.seed.value, self.negatives.value)
        self._sync_controls()
        self.redraw()

    def _run(self) -> None:
        self.status.value = "running SAM 2 ..."
        self.run_button.disabled = True
        try:
            self.explorer.run()
        finally:
            self.run_button.disabled = False
        self.redraw(render=True)

    def _clear(self) -> None:
        self.explorer.clear_points()
        self.redraw()

    def _on_organ(self, change) -> None:
        self._action(lambda: (self.explorer.select(organ=change["new"]), self._sync_controls(),
                              self.redraw(render=True)))()

    def _on_approach(self, change) -> None:
        self._action(lambda: (self.explorer.select(approach=change["new"]), self._sync_controls(), self.redraw()))()

    def _on_seed(self, change) -> None:
        self.explorer.seed = int(change["new"])

    def _on_negatives(self, change) -> None:
        self.explorer.negatives = bool(change["new"])

    def _on_scan(self, change) -> None:
        def load():
            ex = self.explorer
            ex.load_scan(change["new"])
            self.info.value = f"<b>{ex.describe()}</b>"
            self.organ.options = ex.organs
            self.organ.value = ex.organ
            self._sync_controls()
            self.redraw(render=True)

        self._action(load)()

    def _on_slider(self, change) -> None:
        if change["new"] != self.explorer.z:
            self.explorer.set_slice(change["new"])
            self.redraw()

    def _step(self, delta: int) -> None:
        self._goto(self.explorer.z + delta)

    def _goto(self, z: int) -> None:
        z = int(np.clip(z, 0, self.explorer.n_slices - 1))
        self.explorer.set_slice(z)
        self._sync_controls()
        self.redraw()

    def _on_click(self, event) -> None:
        if event.inaxes is not self.ax or event.xdata is None or event.ydata is None:
            return
        ex = self.explorer
        mode = self.click_mode.value

        def edit():
            if mode == "remove" or int(getattr(event, "button", 1)) == 3:
                ex.remove_point(event.xdata, event.ydata)
            else:
                ex.add_point(event.xdata, event.ydata, positive=mode == "positive")
            self.redraw()

        self._action(edit)()


# -- notebook entry point -----------------------------------------------------


def open_explorer(
    params: StudyParams,
    *,
    scan: str | Path | None = None,
    labels: str | Path | None = None,
    label_map: str = "total",
    scan_id: str | None = None,
    modality: str | None = None,
    mr_percentiles: Sequence[float] | None = None,
    model_labels: bool | None = None,
) -> Explorer:
    """The explorer of notebook 06.

    With ``scan`` (a NIfTI file or a DICOM series folder) and ``labels`` (a
    label map on its grid, ids of ``label_map``): that image. Otherwise a
    scan of the run's dataset (``scan_id``, default the first), building the
    embedded sample first when the run asks for it and it is missing.
    """
    kw = {"modality": modality, "mr_percentiles": mr_percentiles}
    if scan is not None:
        if labels is None:
            raise ValueError("scan is given without its label map (labels)")
        if model_labels is not None:
            kw["model_labels"] = model_labels
        return Explorer.from_files(scan, labels, params, label_map=label_map, scan_id=scan_id, **kw)
    if params.build_sample and not (Path(params.dataset_root) / "meta.csv").is_file():
        from helpers.sample import build_sample

        build_sample(params.dataset_root, params.sample_mirror)
    if model_labels is not None:
        kw["model_labels"] = model_labels
    return Explorer.from_dataset(params, scan_id, **kw)
