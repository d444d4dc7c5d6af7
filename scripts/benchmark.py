"""Benchmark: official SAM 2 usage (fresh state per run) vs exact feature reuse.

Runs the inference grid (organs x approaches, plus the caudal run without
negatives) on the embedded sample scan both ways, in one process, with the
same model instance, and prints for each path: wall seconds, image-encoder
seconds and calls, tracking seconds (the rest), peak memory, plus the speed-up
and whether all masks are bitwise identical.

The weights are random by default (the compute is real, the masks are
meaningless): this measures cost, never accuracy.

    python scripts/benchmark.py                                   # tiny, 256 px, full slab
    python scripts/benchmark.py --model sam2.1_hiera_tiny --image-size 1024 --organs liver pancreas --max-frames 2
    python scripts/benchmark.py --model sam2_hiera_large --image-size 1024 --organs liver --max-frames 1
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from helpers import dataset, grid, preprocess
from helpers.inference import ScanVideo
from helpers.params import load_params
from helpers.reporting import RANDOM_WEIGHTS_STAMP
from helpers.sample import build_sample

ROOT = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Peak memory per path: resident memory above the start (CPU) or peak CUDA allocation.

    On the CPU the sampler attributes each sample to the path running at that
    moment; freed memory is often kept by the allocator, so the later path's
    figure is an upper bound.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak: dict[str, int] = {}
        self.active: str | None = None
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss

    def __enter__(self) -> "PeakMemory":
        if self.device.type != "cuda":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            if self.active is not None:
                rss = self._proc.memory_info().rss - self._base
                self.peak[self.active] = max(self.peak.get(self.active, 0), rss)
            time.sleep(0.02)

    def start(self, path: str) -> None:
        self.active = path
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def stop(self) -> None:
        if self.device.type == "cuda":
            self.peak[self.active] = max(self.peak.get(self.active, 0), torch.cuda.max_memory_allocated())
        self.active = None

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.device.type != "cuda":
            self._thread.join()

    def mib(self, path: str) -> float:
        return self.peak.get(path, 0) / 2**20


def prepare(args, workdir: Path):
    """The sample, its data stage and the model, as notebooks 01-03 would make them."""
    p = load_params(
        ROOT / "params" / "smoke.yaml",
        run_name="benchmark",
        output_root=workdir,
        reports_root=workdir / "reports",
        dataset_root=workdir / "sample",
        model=args.model,
        checkpoint=args.checkpoint,
        image_size=args.image_size,
        device=args.device,
        organs=args.organs,
    )
    # None (the whole slab) is a real value here, which load_params would read as "not overridden".
    p = dataclasses.replace(p, max_frames_per_direction=args.max_frames)
    build_sample(p.dataset_root, p.sample_mirror, progress=False)
    layout = p.layout.ensure()
    sel = dataset.select(p.dataset_root, p.organs, max_cases_per_institution=p.max_cases_per_institution,
                         min_mask_voxels=p.min_mask_voxels, seed=p.seed, progress=False)
    geom, errors = preprocess.preprocess_all(p.dataset_root, sel.manifest, layout, level=p.window_level,
                                             width=p.window_width, quality=p.jpeg_quality, levels=p.levels,
                                             progress=False)
    if not errors.empty:
        raise SystemExit(f"preprocessing failed: {errors.to_dict('records')}")
    predictor, info = grid.load_model(p)
    runs = grid.plan_runs(geom, p.approaches, p.ablation_approaches)
    return p, predictor, info, runs


def run_both(p, predictor, runs) -> dict[str, dict]:
    """Every run of the grid through both paths, interleaved run by run so that
    any load on the machine weighs on both alike; masks and cost figures."""
    scan_id = runs["scan_id"].iloc[0]
    frames_dir = p.layout.frames_dir(scan_id)
    slices = preprocess.read_frames_meta(frames_dir)["slices"]
    scan = preprocess.load_scan(p.dataset_root, scan_id, sorted(runs["organ"].unique()))
    stats = {name: {"masks": [], "wall_s": 0.0, "encoder_s": 0.0, "encoder_calls": 0} for name in ("naive", "reuse")}
    video: ScanVideo | None = None
    prompts = {}
    with PeakMemory(predictor.device) as mem:
        for run in runs.itertuples():
            key = (run.organ, run.approach)
            if key not in prompts:
                prompts[key] = grid.case_prompts(p, scan, run.organ, run.approach, run.start_slice)
            pr = prompts[key] if run.negatives else prompts[key].positives_only()
            for name in ("naive", "reuse"):
                st = stats[name]
                enc0, calls0 = predictor.encoder_seconds, predictor.encoder_calls
                mem.start(name)
                t0 = time.perf_counter()
                if name == "naive":
                    runner = ScanVideo(predictor, frames_dir, reuse_features=False)
                else:
                    if video is None:  # loading the frames once per scan is part of the reuse path's cost
                        video = ScanVideo(predictor, frames_dir, reuse_features=True)
                    runner = video
                st["masks"].append(runner.segment(slices.index(run.start_slice), pr, p.max_frames_per_direction))
                st["wall_s"] += time.perf_counter() - t0
                mem.stop()
                st["encoder_s"] += predictor.encoder_seconds - enc0
                st["encoder_calls"] += predictor.encoder_calls - calls0
    m = p.max_frames_per_direction or len(slices)
    tracked = sum(
        (min(s + m, len(slices) - 1) - s) + (s - max(s - m, 0))
        for s in (slices.index(z) for z in runs["start_slice"])
    )
    for name, st in stats.items():
        st["tracking_s"] = st["wall_s"] - st["encoder_s"]
        st["tracked_frames"] = tracked
        st["peak_mib"] = mem.mib(name)
        st["store_mib"] = video.store.nbytes() / 2**20 if name == "reuse" and video is not None else 0.0
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="sam2.1_hiera_tiny")
    ap.add_argument("--checkpoint", default="random", help="random (default), official, or a local .pt")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--organs", nargs="+", default=None, help="default: all eight")
    ap.add_argument("--max-frames", type=int, default=None, help="frames per direction (default: whole slab)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        p, predictor, info, runs = prepare(args, Path(tmp))
        n_frames = len(preprocess.read_frames_meta(p.layout.frames_dir(runs["scan_id"].iloc[0]))["slices"])
        print(f"model {info.model} ({'RANDOM weights: cost only, ' + RANDOM_WEIGHTS_STAMP if info.random_weights else 'pretrained'}), "
              f"{info.image_size} px, device {info.device}, torch threads {torch.get_num_threads()}")
        print(f"grid: {len(runs)} runs on 1 scan, slab {n_frames} frames, "
              f"max frames per direction {p.max_frames_per_direction or 'all'}")
        both = run_both(p, predictor, runs)
    naive, reuse = both["naive"], both["reuse"]
    identical = all(np.array_equal(a, b) for a, b in zip(naive["masks"], reuse["masks"]))
    print(f"{'path':<16}{'wall s':>10}{'encoder s':>11}{'enc calls':>10}{'tracking s':>12}{'peak MiB':>10}{'store MiB':>10}")
    for name, r in (("naive (official)", naive), ("feature reuse", reuse)):
        print(f"{name:<16}{r['wall_s']:>10.1f}{r['encoder_s']:>11.1f}{r['encoder_calls']:>10d}"
              f"{r['tracking_s']:>12.1f}{r['peak_mib']:>10.0f}{r['store_mib']:>10.0f}")
    print(f"speed-up (naive / reuse wall): {naive['wall_s'] / reuse['wall_s']:.2f}x")
    for name, r in (("naive (official)", naive), ("feature reuse", reuse)):
        print(f"{name}: encoder {r['encoder_s'] / max(r['encoder_calls'], 1):.3f} s/call, "
              f"everything else {r['tracking_s'] / max(r['tracked_frames'], 1):.3f} s per tracked frame "
              f"({r['tracked_frames']} frames tracked)")
    print(f"masks bitwise identical: {identical} ({len(naive['masks'])} runs)")


if __name__ == "__main__":
    main()
