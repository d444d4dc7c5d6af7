"""Resumable, SHA-256-verified file downloads (SAM 2 checkpoints, sample CT data).

A download goes to ``<dest>.part`` first and is renamed to ``dest`` only once its
SHA-256 is verified, so ``dest`` is never a partial or corrupt file. A transfer
that stops midway keeps the ``.part`` file, and the next call resumes it with an
HTTP ``Range`` request. Only the standard library (``urllib.request``) and tqdm
are used; ``file://`` URLs work too, which is handy for a local mirror.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from helpers import __version__

__all__ = ["ChecksumError", "DownloadError", "download", "sha256sum"]

_HASH_CHUNK = 1 << 20
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Some CDNs refuse urllib's default "Python-urllib/x.y" agent.
_USER_AGENT = f"helpers/{__version__} (urllib)"


class ChecksumError(ValueError):
    """A downloaded file does not have the expected SHA-256."""


class DownloadError(OSError):
    """A transfer stopped before the whole file arrived; its ``.part`` file is kept."""


def sha256sum(path: Path) -> str:
    """
    Compute the SHA-256 of a file, reading it in 1 MiB chunks.

    Arguments:
      path (Path): The file to hash.

    Returns:
      (str): The hex digest, lower case.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    progress: bool = True,
    timeout: float = 60,
    chunk_size: int = 1 << 20,
) -> Path:
    """
    Download ``url`` to ``dest``, resuming a partial download and verifying SHA-256.

    If ``dest`` already exists and has the expected hash (or no hash is given),
    it is returned without touching the network. Otherwise the bytes go to
    ``dest.with_suffix(dest.suffix + ".part")``: an existing ``.part`` file is
    resumed with ``Range: bytes=<size>-``. A 206 answer is appended; a 200 answer
    (the server ignored the range) restarts from zero; a 416 answer (nothing
    past the part's end) means the part is complete or stale: it is used if its
    hash matches, and downloaded again from zero otherwise. A verified part is
    renamed to ``dest`` atomically (``os.replace``).

    Arguments:
      url (str): An ``http://``, ``https://`` or ``file://`` URL.
      dest (Path): Where the file ends up; parent folders are created.
      sha256 (str or None): Expected hex SHA-256 (either case). None skips the
        check, so use it only for files whose hash is genuinely unknown.
      progress (bool): Show a tqdm progress bar on stderr.
      timeout (float): Seconds to wait for the connection and for each read.
      chunk_size (int): Bytes read from the network at a time.

    Returns:
      (Path): ``dest``.

    Raises:
      ValueError: If ``sha256`` is not 64 hex digits.
      ChecksumError: If the downloaded file has another hash; the bad ``.part``
        file is deleted, so calling again starts a fresh download.
      DownloadError: If the transfer stopped early (connection dropped or fewer
        bytes than announced); the ``.part`` file is kept for the next call.
      urllib.error.URLError: If the server cannot be reached or answers with an
        HTTP error.
    """
    expected = None if sha256 is None else sha256.lower()
    if expected is not None and not _SHA256_HEX.fullmatch(expected):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if dest.is_file() and (expected is None or sha256sum(dest) == expected):
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or offset == 0:
            raise
        error.close()
        if expected is not None and sha256sum(part) == expected:
            os.replace(part, dest)
            return dest
        part.unlink()
        offset = 0
        response = _open(url, offset, timeout)

    with response:
        _receive(response, url, part, offset, progress=progress, chunk_size=chunk_size)
    if expected is not None:
        actual = sha256sum(part)
        if actual != expected:
            part.unlink()
            raise ChecksumError(
                f"SHA-256 mismatch for {url} (downloading to {dest}): expected "
                f"{expected}, got {actual}. The bad file was deleted; a new call "
                "downloads it again from the start."
            )
    os.replace(part, dest)
    return dest


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """
    Send the GET request, asking only for the bytes from ``offset`` on if it is > 0.

    Arguments:
      url (str): The URL to fetch.
      offset (int): Bytes already on disk.
      timeout (float): Seconds to wait for the connection and for each read.

    Returns:
      (http.client.HTTPResponse): The open response (an equivalent file-like
        object with status None for ``file://`` URLs).
    """
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    return response


def _receive(
    response: http.client.HTTPResponse,
    url: str,
    part: Path,
    offset: int,
    *,
    progress: bool,
    chunk_size: int,
) -> None:
    """
    Write the response body to ``part``: appended on a 206, from zero otherwise.

    Arguments:
      response (http.client.HTTPResponse): The open response.
      url (str): The URL, for error messages.
      part (Path): The partial file.
      offset (int): Size of ``part`` when the range request was sent.
      progress (bool): Show a tqdm progress bar.
      chunk_size (int): Bytes read at a time.

    Raises:
      DownloadError: If the connection drops, times out, or ends before the
        announced Content-Length.
    """
    resumed = response.status == 206
    start = offset if resumed else 0
    length = response.headers.get("Content-Length")
    total = None if length is None else start + int(length)
    received = start
    with (
        open(part, "ab" if resumed else "wb") as out,
        tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
        ) as bar,
    ):
        while True:
            try:
                chunk = response.read(chunk_size)
            except (OSError, http.client.HTTPException) as error:
                raise DownloadError(_interrupted(url, part, received, total)) from error
            if not chunk:
                break
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received < total:
        raise DownloadError(_interrupted(url, part, received, total))


def _interrupted(url: str, part: Path, received: int, total: int | None) -> str:
    """The message of a DownloadError: what arrived, and that the next call resumes."""
    of_total = "" if total is None else f" of {total}"
    return (
        f"Download of {url} was interrupted after {received}{of_total} bytes. "
        f"The partial file {part} is kept; calling download() again resumes it."
    )
