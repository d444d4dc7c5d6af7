"""Tests of helpers.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers.download import ChecksumError, DownloadError, download, sha256sum

SIZE = 300_001  # odd, so that "half" is not a round number
CHUNK = 4096


@dataclass
class Files:
    """What the test server serves, how it misbehaves, and what it was asked."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    #: Paths whose next answer announces the full length but sends only half.
    cut_once: set[str] = field(default_factory=set)
    #: Paths whose next answer sends half the body, then stalls until teardown.
    stall_once: set[str] = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)
    #: Answer every request with 200 and the whole file, ignoring Range.
    ignore_range: bool = False
    #: (path, Range header or None) of every request, in order.
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path``; return its URL."""
        self.files[path] = body
        return self.url + path


def _handler(state: Files) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if range_header is not None and not state.ignore_range:
                match = re.fullmatch(r"bytes=(\d+)-", range_header)
                assert match is not None, range_header
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.path in state.cut_once:
                state.cut_once.discard(self.path)
                payload = payload[: len(payload) // 2]
            if self.path in state.stall_once:
                state.stall_once.discard(self.path)
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                state.released.wait(timeout=10)
                return
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[Files]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Files(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield state
    state.released.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _blob(seed: int, size: int = SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sha256sum_streams_multiple_chunks(tmp_path: Path) -> None:
    data = _blob(0, (1 << 20) * 2 + 123)  # spans three 1 MiB reads
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256sum(path) == _sha(data)


def test_fresh_download(server: Files, tmp_path: Path) -> None:
    data = _blob(1)
    url = server.add("/ckpt.pt", data)
    dest = tmp_path / "sub" / "ckpt.pt"

    assert download(url, dest, _sha(data), progress=False, chunk_size=CHUNK) == dest

    assert dest.read_bytes() == data
    assert not dest.with_suffix(".pt.part").exists()
    assert server.requests == [("/ckpt.pt", None)]


def test_uppercase_hash_is_accepted(server: Files, tmp_path: Path) -> None:
    data = _blob(2)
    url = server.add("/a.bin", data)
    dest = download(url, tmp_path / "a.bin", _sha(data).upper(), progress=False)
    assert dest.read_bytes() == data


def test_present_file_makes_no_request(server: Files, tmp_path: Path) -> None:
    data = _blob(3)
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    dest.write_bytes(data)

    assert download(url, dest, _sha(data), progress=False) == dest
    assert server.requests == []


def test_present_file_with_wrong_hash_is_replaced(server: Files, tmp_path: Path) -> None:
    data = _blob(4)
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"stale")

    download(url, dest, _sha(data), progress=False)

    assert dest.read_bytes() == data
    assert len(server.requests) == 1


def test_checksum_mismatch(server: Files, tmp_path: Path) -> None:
    data = _blob(5)
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    wrong = "0" * 64

    with pytest.raises(ChecksumError) as info:
        download(url, dest, wrong, progress=False)

    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for part in (url, str(dest), wrong, _sha(data)):
        assert part in message
    assert not dest.exists()
    assert not dest.with_suffix(".bin.part").exists()


def test_malformed_hash_fails_before_any_request(server: Files, tmp_path: Path) -> None:
    url = server.add("/a.bin", _blob(6))
    with pytest.raises(ValueError, match="64 hex digits"):
        download(url, tmp_path / "a.bin", "abc", progress=False)
    assert server.requests == []


def test_interrupted_transfer_is_resumed(server: Files, tmp_path: Path) -> None:
    data = _blob(7)
    url = server.add("/a.bin", data)
    server.cut_once.add("/a.bin")
    dest = tmp_path / "a.bin"
    part = tmp_path / "a.bin.part"
    half = SIZE // 2

    with pytest.raises(DownloadError) as info:
        download(url, dest, _sha(data), progress=False, chunk_size=CHUNK)

    assert isinstance(info.value, OSError)
    assert url in str(info.value)
    assert "resume" in str(info.value)
    assert not dest.exists()
    assert part.read_bytes() == data[:half]

    download(url, dest, _sha(data), progress=False, chunk_size=CHUNK)

    assert server.requests == [("/a.bin", None), ("/a.bin", f"bytes={half}-")]
    assert dest.read_bytes() == data
    assert not part.exists()


def test_stalled_transfer_times_out_and_is_resumed(server: Files, tmp_path: Path) -> None:
    data = _blob(15)
    url = server.add("/a.bin", data)
    server.stall_once.add("/a.bin")
    dest = tmp_path / "a.bin"

    with pytest.raises(DownloadError, match="resume") as info:
        download(url, dest, _sha(data), progress=False, timeout=0.2, chunk_size=CHUNK)

    assert isinstance(info.value.__cause__, TimeoutError)
    kept = (tmp_path / "a.bin.part").stat().st_size
    assert 0 < kept < SIZE

    download(url, dest, _sha(data), progress=False)

    assert server.requests[-1] == ("/a.bin", f"bytes={kept}-")
    assert dest.read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(server: Files, tmp_path: Path) -> None:
    data = _blob(8)
    url = server.add("/a.bin", data)
    server.ignore_range = True
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"x" * 1000)  # would corrupt if appended to

    download(url, dest, _sha(data), progress=False)

    assert server.requests == [("/a.bin", "bytes=1000-")]
    assert dest.read_bytes() == data


def test_416_with_complete_part_uses_it(server: Files, tmp_path: Path) -> None:
    data = _blob(9)
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(data)

    download(url, dest, _sha(data), progress=False)

    assert server.requests == [("/a.bin", f"bytes={SIZE}-")]
    assert dest.read_bytes() == data
    assert not (tmp_path / "a.bin.part").exists()


def test_416_with_stale_part_restarts(server: Files, tmp_path: Path) -> None:
    data = _blob(10)
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"y" * (SIZE + 7))

    download(url, dest, _sha(data), progress=False)

    assert server.requests == [("/a.bin", f"bytes={SIZE + 7}-"), ("/a.bin", None)]
    assert dest.read_bytes() == data


def test_progress_bar(server: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _blob(11)
    url = server.add("/shown.bin", data)
    download(url, tmp_path / "shown.bin", _sha(data), progress=True, chunk_size=CHUNK)
    assert "shown.bin" in capsys.readouterr().err

    url = server.add("/quiet.bin", data)
    download(url, tmp_path / "quiet.bin", _sha(data), progress=False)
    assert capsys.readouterr().err == ""


def test_resumed_progress_bar_starts_at_resumed_bytes(
    server: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _blob(13)
    url = server.add("/a.bin", data)
    server.cut_once.add("/a.bin")
    with pytest.raises(DownloadError):
        download(url, tmp_path / "a.bin", _sha(data), progress=False)

    download(url, tmp_path / "a.bin", _sha(data), progress=True, chunk_size=CHUNK)

    assert server.requests[-1] == ("/a.bin", f"bytes={SIZE // 2}-")
    assert "100%" in capsys.readouterr().err  # 50% if the resumed bytes were not counted


def test_without_hash(server: Files, tmp_path: Path) -> None:
    data = _blob(14)
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"

    assert download(url, dest, None, progress=False).read_bytes() == data
    download(url, dest, None, progress=False)  # present: trusted as is

    assert len(server.requests) == 1


def test_file_url(tmp_path: Path) -> None:
    data = _blob(12)
    source = tmp_path / "mirror" / "a.bin"
    source.parent.mkdir()
    source.write_bytes(data)

    dest = download(source.as_uri(), tmp_path / "out" / "a.bin", _sha(data), progress=False)

    assert dest.read_bytes() == data
