"""seedsoil.fetch against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seedsoil.errors import InputError
from seedsoil.fetch import download, sha256sum, url_filename

BODY = bytes(range(256)) * 400  # 102,400 bytes: several chunks of a small buffer
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """Serves BODY under paths that each misbehave in one way."""

    hits: dict[str, int] = {}

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        count = self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/ok":
            self._send(BODY)
        elif self.path == "/flaky" and count == 1:
            self.send_error(500, "transient")
        elif self.path == "/flaky":
            self._send(BODY)
        elif self.path == "/truncated-once" and count == 1:
            self._send(BODY, length=len(BODY) + 1000)
        elif self.path == "/truncated-once":
            self._send(BODY)
        elif self.path == "/always-truncated":
            self._send(BODY[:5000], length=len(BODY))
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes, length: int | None = None):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def reset_hits():
    Handler.hits.clear()


def only_final(folder):
    return sorted(p.name for p in folder.iterdir())


def test_download_writes_exact_bytes(server, tmp_path):
    dest = download(f"{server}/ok", tmp_path / "data.bin", sha256=BODY_SHA256, backoff=0)
    assert dest.read_bytes() == BODY
    assert only_final(tmp_path) == ["data.bin"]


def test_sha256sum_matches_hashlib(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(BODY)
    assert sha256sum(path) == BODY_SHA256


def test_transient_500_is_retried(server, tmp_path):
    dest = download(f"{server}/flaky", tmp_path / "data.bin", backoff=0)
    assert dest.read_bytes() == BODY
    assert Handler.hits["/flaky"] == 2


def test_truncated_transfer_is_retried(server, tmp_path):
    dest = download(f"{server}/truncated-once", tmp_path / "data.bin", backoff=0)
    assert dest.read_bytes() == BODY
    assert Handler.hits["/truncated-once"] == 2


def test_persistent_truncation_fails_and_leaves_nothing(server, tmp_path):
    with pytest.raises(InputError, match="after 3 attempts"):
        download(f"{server}/always-truncated", tmp_path / "data.bin", backoff=0)
    assert Handler.hits["/always-truncated"] == 3
    assert only_final(tmp_path) == []


def test_wrong_checksum_names_both_digests_and_leaves_nothing(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(InputError) as error:
        download(f"{server}/ok", tmp_path / "data.bin", sha256=wrong, backoff=0)
    message = str(error.value)
    assert wrong in message and BODY_SHA256 in message and "/ok" in message
    assert "sha256 column" in message
    assert only_final(tmp_path) == []
    assert Handler.hits["/ok"] == 1  # a mismatch is not a transient failure


def test_404_is_a_clear_error_without_retry(server, tmp_path):
    with pytest.raises(InputError, match="HTTP 404") as error:
        download(f"{server}/missing", tmp_path / "data.bin", backoff=0)
    assert "/missing" in str(error.value)
    assert Handler.hits["/missing"] == 1
    assert only_final(tmp_path) == []


def test_existing_file_is_kept_when_download_fails(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(InputError):
        download(f"{server}/ok", dest, sha256="1" * 64, backoff=0)
    assert dest.read_bytes() == b"previous"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.org/data/pbmc.h5ad", "pbmc.h5ad"),
        ("https://example.org/data/pbmc.h5ad?download=1#x", "pbmc.h5ad"),
        ("https://example.org/", "download"),
    ],
)
def test_url_filename_is_the_last_path_segment(url, name):
    assert url_filename(url) == name
