"""Tests of the SAM 2 model registry and of resolve_checkpoint."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import models
from helpers.download import ChecksumError
from helpers.models import MODELS, ModelSpec, resolve_checkpoint

NAMES = [
    "sam2_hiera_tiny",
    "sam2_hiera_small",
    "sam2_hiera_base_plus",
    "sam2_hiera_large",
    "sam2.1_hiera_tiny",
    "sam2.1_hiera_small",
    "sam2.1_hiera_base_plus",
    "sam2.1_hiera_large",
]
SIZES = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}


def test_registry_names() -> None:
    assert list(MODELS) == NAMES
    assert all(MODELS[name].name == name for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_matches_official_layout(name: str) -> None:
    spec = MODELS[name]
    match = re.fullmatch(r"(sam2(?:\.1)?)_hiera_(\w+)", name)
    assert match is not None
    version, size = match.groups()
    release = {"sam2": "072824", "sam2.1": "092824"}[version]
    assert spec.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{release}/{name}.pt"
    assert spec.config == f"configs/{version}/{version}_hiera_{SIZES[size]}.yaml"
    assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)


@pytest.mark.parametrize("name", NAMES)
def test_config_ships_with_sam2(name: str) -> None:
    assert importlib.resources.files("sam2").joinpath(MODELS[name].config).is_file()


def test_hashes_are_distinct() -> None:
    assert len({spec.sha256 for spec in MODELS.values()}) == len(MODELS)


def test_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        MODELS["sam2_hiera_tiny"].sha256 = "0" * 64  # type: ignore[misc]


def test_random_returns_none(tmp_path: Path) -> None:
    assert resolve_checkpoint("sam2_hiera_large", "random", tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_local_file(tmp_path: Path) -> None:
    local = tmp_path / "mine.pt"
    local.write_bytes(b"weights")
    assert resolve_checkpoint("sam2.1_hiera_tiny", str(local), tmp_path / "cache") == local


def test_missing_local_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        resolve_checkpoint("sam2.1_hiera_tiny", str(missing), tmp_path)


def test_unknown_model_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sam3_hiera_huge") as info:
        resolve_checkpoint("sam3_hiera_huge", "random", tmp_path)
    assert all(name in str(info.value) for name in NAMES)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 serving a temporary folder: (base URL, folder)."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()
    thread.join()


# The "official" tests exercise the download path only: MODELS is patched to point
# at a local server holding a small fake file, never at Meta's real checkpoints.


def test_official_downloads_verified_file_into_cache(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, folder = mirror
    fake = b"not really a checkpoint" * 1000
    (folder / "fake.pt").write_bytes(fake)
    spec = ModelSpec(
        name="sam2_hiera_tiny",
        config=MODELS["sam2_hiera_tiny"].config,
        url=f"{base_url}/fake.pt",
        sha256=hashlib.sha256(fake).hexdigest(),
    )
    monkeypatch.setitem(models.MODELS, "sam2_hiera_tiny", spec)
    cache = tmp_path / "cache"

    path = resolve_checkpoint("sam2_hiera_tiny", "official", cache, progress=False)

    assert path == cache / "sam2_hiera_tiny.pt"
    assert path.read_bytes() == fake

    (folder / "fake.pt").unlink()  # the cached copy is used from now on
    assert resolve_checkpoint("sam2_hiera_tiny", "official", cache, progress=False) == path


def test_official_with_wrong_hash_fails(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, folder = mirror
    (folder / "fake.pt").write_bytes(b"tampered")
    spec = ModelSpec(
        name="sam2.1_hiera_large",
        config=MODELS["sam2.1_hiera_large"].config,
        url=f"{base_url}/fake.pt",
        sha256=MODELS["sam2.1_hiera_large"].sha256,
    )
    monkeypatch.setitem(models.MODELS, "sam2.1_hiera_large", spec)

    with pytest.raises(ChecksumError):
        resolve_checkpoint("sam2.1_hiera_large", "official", tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "sam2.1_hiera_large.pt").exists()
