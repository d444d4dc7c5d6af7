"""The SAM 2 checkpoints the study can run, and where their weights come from.

:data:`MODELS` maps a model name (the checkpoint's file name without ``.pt``)
to its hydra config inside the installed ``sam2`` package, its official
download address and its SHA-256. :func:`resolve_checkpoint` turns the study's
``checkpoint`` parameter into the file to load. Building the predictor happens
elsewhere.

Addresses are those of Meta's ``checkpoints/download_ckpts.sh`` in
facebookresearch/sam2: ``segment_anything_2/072824/`` for SAM 2 (July 2024) and
``segment_anything_2/092824/`` for SAM 2.1 (September 2024). Meta publishes no
checksums, so each SHA-256 below is taken from public sources, all agreeing:

* computational-cell-analytics/micro-sam, ``micro_sam/v2/util.py`` (commit
  4f6cca85a2e9ca9e25ec4df0eab4e239f9a48fcc), ``HASHES``: all eight, checked by
  ``pooch.retrieve`` against exactly these dl.fbaipublicfiles.com URLs;
* the Git LFS pointers of Meta's own Hugging Face uploads of the same files
  (huggingface.co/facebook/sam2-hiera-{tiny,small,base-plus} and
  facebook/sam2.1-hiera-{tiny,small}), whose sizes also match those of the
  dl.fbaipublicfiles.com files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers.download import download

__all__ = ["MODELS", "ModelSpec", "resolve_checkpoint"]

_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
_SAM2_1_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"


@dataclass(frozen=True)
class ModelSpec:
    """
    One official SAM 2 checkpoint.

    Arguments:
      name (str): Model name, also the checkpoint's file name without ``.pt``.
      config (str): Hydra config name inside the installed ``sam2`` package, as
        ``sam2.build_sam.build_sam2`` takes it.
      url (str): Official download address of the checkpoint.
      sha256 (str): Hex SHA-256 of the checkpoint file.
    """

    name: str
    config: str
    url: str
    sha256: str


def _official(name: str, config: str, base_url: str, sha256: str) -> ModelSpec:
    """The spec of an official checkpoint, found at ``<base_url>/<name>.pt``."""
    return ModelSpec(name=name, config=config, url=f"{base_url}/{name}.pt", sha256=sha256)


#: Model name -> spec, for the eight official SAM 2 and SAM 2.1 checkpoints.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _official(
            "sam2_hiera_tiny",
            "configs/sam2/sam2_hiera_t.yaml",
            _SAM2_URL,
            "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125",
        ),
        _official(
            "sam2_hiera_small",
            "configs/sam2/sam2_hiera_s.yaml",
            _SAM2_URL,
            "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3",
        ),
        _official(
            "sam2_hiera_base_plus",
            "configs/sam2/sam2_hiera_b+.yaml",
            _SAM2_URL,
            "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071",
        ),
        _official(
            "sam2_hiera_large",
            "configs/sam2/sam2_hiera_l.yaml",
            _SAM2_URL,
            "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b",
        ),
        _official(
            "sam2.1_hiera_tiny",
            "configs/sam2.1/sam2.1_hiera_t.yaml",
            _SAM2_1_URL,
            "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
        ),
        _official(
            "sam2.1_hiera_small",
            "configs/sam2.1/sam2.1_hiera_s.yaml",
            _SAM2_1_URL,
            "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
        ),
        _official(
            "sam2.1_hiera_base_plus",
            "configs/sam2.1/sam2.1_hiera_b+.yaml",
            _SAM2_1_URL,
            "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
        ),
        _official(
            "sam2.1_hiera_large",
            "configs/sam2.1/sam2.1_hiera_l.yaml",
            _SAM2_1_URL,
            "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
        ),
    )
}


def resolve_checkpoint(
    model: str,
    checkpoint: str,
    cache_dir: Path,
    *,
    progress: bool = True,
) -> Path | None:
    """
    Turn the study's ``checkpoint`` parameter into the checkpoint file to load.

    Arguments:
      model (str): A key of :data:`MODELS`.
      checkpoint (str): ``"official"`` downloads the official checkpoint into
        ``cache_dir`` (SHA-256 verified, reused when already there);
        ``"random"`` returns None, for the caller to build random weights;
        anything else is the path of a local checkpoint file.
      cache_dir (Path): Folder of the downloaded official checkpoints.
      progress (bool): Show a progress bar while downloading.

    Returns:
      (Path or None): The checkpoint file, or None for random weights.

    Raises:
      ValueError: If ``model`` is not a key of :data:`MODELS`.
      FileNotFoundError: If ``checkpoint`` is a path that is not an existing file.
      helpers.download.ChecksumError: If the official download has another hash.
    """
    if model not in MODELS:
        raise ValueError(f"Unknown SAM 2 model {model!r}; known models: {', '.join(MODELS)}")
    if checkpoint == "random":
        return None
    if checkpoint == "official":
        spec = MODELS[model]
        return download(spec.url, cache_dir / f"{spec.name}.pt", spec.sha256, progress=progress)
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint file {path} does not exist (checkpoint must be 'official', "
            "'random' or the path of a local checkpoint file)"
        )
    return path
