"""The paper's automatic point prompts on a start slice.

On the start slice of an organ (see :func:`helpers.geometry.percentile_slice`):

* positive points: ``n_positive`` pixels drawn without replacement from the
  organ mask;
* negative points: ``n_negative`` pixels drawn without replacement from the
  *ring* outside the mask: background pixels whose in-plane Euclidean
  distance (in voxels, :func:`scipy.ndimage.distance_transform_edt`) to the
  nearest mask pixel lies in ``[min_distance, max_distance]`` — by default
  [2, 3]. Pixels touching the mask (distance 1, or sqrt(2) diagonally) form
  the excluded 1-voxel margin.

Points are in the coordinates of the image SAM 2 sees: ``(x, y) = (column,
row)`` of :func:`helpers.volumes.slice_to_image`. When a slice has fewer
candidates than asked for, all candidates are taken and the shortfall is
recorded (``n_positive``/``n_negative`` of :class:`Prompts`).

Randomness: each (scan, organ, approach) gets its own generator derived from
the run's seed (:func:`prompt_rng`), and the positives are drawn before the
negatives, so the ablation without negatives uses exactly the same positives.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Prompts:
    """Points (N, 2) as (x, y) image coordinates and labels (1 positive, 0 negative)."""

    points: np.ndarray
    labels: np.ndarray

    @property
    def n_positive(self) -> int:
        return int((self.labels == 1).sum())

    @property
    def n_negative(self) -> int:
        return int((self.labels == 0).sum())

    def positives_only(self) -> "Prompts":
        """The same prompts without the negative points (the ablation)."""
        keep = self.labels == 1
        return Prompts(points=self.points[keep], labels=self.labels[keep])

    def to_json(self) -> str:
        """Compact JSON: ``{"points": [[x, y], ...], "labels": [...]}``."""
        return json.dumps({"points": self.points.tolist(), "labels": self.labels.tolist()})


def ring(mask2d: np.ndarray, min_distance: float, max_distance: float) -> np.ndarray:
    """Background pixels at distance ``[min_distance, max_distance]`` from the mask."""
    mask2d = np.asarray(mask2d, dtype=bool)
    if not mask2d.any():
        return np.zeros_like(mask2d)
    dist = ndimage.distance_transform_edt(~mask2d)
    return (dist >= min_distance) & (dist <= max_distance)


def prompt_rng(seed: int, scan_id: str, organ: str, approach: str) -> np.random.Generator:
    """A generator that depends only on the run's seed and the case (stable across runs and machines)."""
    key = [zlib.crc32(s.encode()) for s in (scan_id, organ, approach)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *key]))


def _draw(candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    rows, cols = np.nonzero(candidates)
    take = rng.choice(rows.size, size=min(n, rows.size), replace=False)
    return np.stack([cols[take], rows[take]], axis=1).astype(np.float32)


def sample_prompts(
    mask2d: np.ndarray,
    *,
    n_positive: int,
    n_negative: int,
    min_distance: float,
    max_distance: float,
    rng: np.random.Generator,
) -> Prompts:
    """Draw the paper's positive and negative points on one image-space mask slice.

    Raises ``ValueError`` when the slice holds no organ pixel (a start slice
    always does, by the percentile definition).
    """
    mask2d = np.asarray(mask2d, dtype=bool)
    if not mask2d.any():
        raise ValueError("sample_prompts: the start slice holds no organ pixel")
    pos = _draw(mask2d, n_positive, rng)
    neg = _draw(ring(mask2d, min_distance, max_distance), n_negative, rng)
    points = np.concatenate([pos, neg]).reshape(-1, 2)
    labels = np.concatenate([np.ones(len(pos), np.int32), np.zeros(len(neg), np.int32)])
    return Prompts(points=points, labels=labels)
