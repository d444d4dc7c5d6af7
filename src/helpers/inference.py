"""SAM 2 video propagation over a scan's slices, with exact feature reuse.

One *run* segments one organ of one scan: prompts on the start slice, then
SAM 2's video predictor propagates towards the most cranial slice and,
separately (a fresh tracking state, same prompts), towards the most caudal
slice. The two halves are merged into one mask per frame (mask logits > 0);
the start slice comes from the cranial-direction pass (both passes compute it
from the same prompts and features, so it is the same in both).

Feature reuse: the image encoder's output for a slice does not depend on the
prompts, so :class:`StudyVideoPredictor` keeps every encoded slice of a scan in
a :class:`FeatureStore` and serves all organs, approaches, ablations and both
directions from it. It computes exactly what upstream computes (same calls,
batch size 1, same order of operations), so the masks are bitwise identical to
the official usage with a fresh state per run (checked by the tests and the
benchmark). The positional encoding is the same for every frame, so the store
keeps one copy of it (checked with ``torch.equal`` on every insertion).
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import sam2.sam2_video_predictor as _upstream
import sam2.utils.misc as _upstream_misc
import torch
from sam2.build_sam import build_sam2_video_predictor
from sam2.sam2_video_predictor import SAM2VideoPredictor
from tqdm.auto import tqdm

from helpers.models import MODELS
from helpers.prompts import Prompts

#: Key of the feature store inside a SAM 2 inference state.
STORE_KEY = "study_feature_store"

# SAM 2 draws a progress bar per frame-loading and per propagation call; the study shows its own.
_upstream.tqdm = _upstream_misc.tqdm = functools.partial(tqdm, disable=True)


def select_device(preference: str = "auto") -> torch.device:
    """``cuda`` if available, else ``mps``, else ``cpu`` (or the named device)."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (as upstream recommends); nothing elsewhere.

    On this project's CPUs bfloat16 runs about 9x slower than float32.
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class FeatureStore:
    """Encoded frames of one scan: ``frame -> (image, backbone_out)``.

    Unlike upstream's ``cached_features`` (one frame, replaced on every miss),
    it keeps every frame. All frames share one positional-encoding list.
    """

    def __init__(self) -> None:
        self._frames: dict[int, tuple[torch.Tensor, dict]] = {}
        self._pos_enc: list[torch.Tensor] | None = None

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._frames

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, frame_idx: int) -> tuple[torch.Tensor, dict] | None:
        return self._frames.get(frame_idx)

    def put(self, frame_idx: int, image: torch.Tensor, backbone_out: dict) -> None:
        """Keep a frame's features, replacing its positional encoding by the shared copy."""
        pos = backbone_out["vision_pos_enc"]
        if self._pos_enc is None:
            self._pos_enc = pos
        elif not all(torch.equal(a, b) for a, b in zip(self._pos_enc, pos)):
            raise RuntimeError("positional encoding differs between frames; feature reuse would not be exact")
        self._frames[frame_idx] = (image, {**backbone_out, "vision_pos_enc": self._pos_enc})

    def nbytes(self) -> int:
        """Memory held by the stored features (shared positional encoding counted once)."""
        seen: set[int] = set()
        total = 0
        tensors = [t for _, out in self._frames.values() for t in (*out["backbone_fpn"], *out["vision_pos_enc"])]
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
        return total


class StudyVideoPredictor(SAM2VideoPredictor):
    """SAM 2's video predictor, plus a persistent per-scan feature store and timing.

    Without a store in the inference state it behaves exactly like upstream.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.encoder_seconds = 0.0
        self.encoder_calls = 0

    def forward_image(self, img_batch: torch.Tensor):
        """Upstream's image encoder, timed."""
        t0 = time.perf_counter()
        out = super().forward_image(img_batch)
        if img_batch.is_cuda:
            torch.cuda.synchronize()
        self.encoder_seconds += time.perf_counter() - t0
        self.encoder_calls += 1
        return out

    def _get_image_feature(self, inference_state, frame_idx, batch_size):
        store: FeatureStore | None = inference_state.get(STORE_KEY)
        if store is not None:
            hit = store.get(frame_idx)
            if hit is not None:
                inference_state["cached_features"] = {frame_idx: hit}
        features = super()._get_image_feature(inference_state, frame_idx, batch_size)
        if store is not None and frame_idx not in store:
            store.put(frame_idx, *inference_state["cached_features"][frame_idx])
        return features


@dataclass(frozen=True)
class ModelInfo:
    """What model produced a result."""

    model: str
    config: str
    checkpoint: str
    checkpoint_sha256: str
    image_size: int
    device: str

    @property
    def random_weights(self) -> bool:
        return self.checkpoint == "random"


def build_predictor(
    model: str,
    checkpoint_path: Path | None,
    *,
    image_size: int,
    device: torch.device,
    seed: int,
    checkpoint_sha256: str,
) -> tuple[StudyVideoPredictor, ModelInfo]:
    """Build SAM 2's video predictor for a registry model.

    ``checkpoint_path=None`` builds the real architecture with random weights
    drawn from ``seed`` (compute benchmarks and tests only: not results).
    ``image_size`` overrides the config's input size (1024 in all configs).
    """
    spec = MODELS[model]
    torch.manual_seed(seed)
    predictor = build_sam2_video_predictor(
        spec.config,
        ckpt_path=str(checkpoint_path) if checkpoint_path is not None else None,
        device=str(device),
        hydra_overrides_extra=[
            f"++model._target_={StudyVideoPredictor.__module__}.{StudyVideoPredictor.__qualname__}",
            f"++model.image_size={int(image_size)}",
        ],
    )
    info = ModelInfo(
        model=model,
        config=spec.config,
        checkpoint="random" if checkpoint_path is None else str(checkpoint_path),
        checkpoint_sha256=checkpoint_sha256,
        image_size=int(image_size),
        device=str(device),
    )
    return predictor, info


@dataclass
class ScanVideo:
    """A scan's frames loaded into a SAM 2 inference state.

    With ``reuse_features`` the state carries a :class:`FeatureStore`, so each
    slice is encoded at most once however many runs use it; without, every
    call to :meth:`segment` behaves like the official usage (the caller makes
    a fresh ``ScanVideo`` per run for the naive path).
    """

    predictor: StudyVideoPredictor
    frames_dir: Path
    reuse_features: bool = True
    state: dict = field(init=False)

    def __post_init__(self) -> None:
        with torch.inference_mode(), autocast(self.predictor.device):
            self.state = self.predictor.init_state(str(self.frames_dir))
        if self.reuse_features:
            store = FeatureStore()
            store.put(0, *self.state["cached_features"][0])  # encoded by init_state
            self.state[STORE_KEY] = store

    @property
    def num_frames(self) -> int:
        return int(self.state["num_frames"])

    @property
    def store(self) -> FeatureStore | None:
        return self.state.get(STORE_KEY)

    def _propagate(self, start: int, prompts: Prompts, reverse: bool, max_frames: int | None) -> Iterator:
        p = self.predictor
        p.reset_state(self.state)
        p.add_new_points_or_box(
            self.state, frame_idx=start, obj_id=1, points=prompts.points, labels=prompts.labels
        )
        yield from p.propagate_in_video(
            self.state, start_frame_idx=start, max_frame_num_to_track=max_frames, reverse=reverse
        )

    def segment(self, start_frame: int, prompts: Prompts, max_frames: int | None = None) -> np.ndarray:
        """Bidirectional propagation from ``start_frame``; returns ``(frames, H, W)`` bool.

        ``max_frames`` limits the frames tracked in each direction (``None``:
        to both ends of the slab, as in the paper); frames not reached stay
        empty.
        """
        if not 0 <= start_frame < self.num_frames:
            raise ValueError(f"start frame {start_frame} outside 0..{self.num_frames - 1}")
        h, w = self.state["video_height"], self.state["video_width"]
        masks = np.zeros((self.num_frames, h, w), dtype=bool)
        with torch.inference_mode(), autocast(self.predictor.device):
            for reverse in (False, True):
                for frame_idx, _, logits in self._propagate(start_frame, prompts, reverse, max_frames):
                    if reverse and frame_idx == start_frame:
                        continue  # the start slice is taken from the cranial-direction pass
                    masks[frame_idx] = (logits[0, 0] > 0.0).cpu().numpy()
        return masks
