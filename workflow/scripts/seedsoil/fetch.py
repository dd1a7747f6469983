"""Download a URL to a file: retries, a temporary name, length and sha256 checks.

A file appears under its final name only when the transfer is complete (all the bytes the
server announced in ``Content-Length``) and, when a digest is given, its sha256 matches.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from seedsoil.errors import InputError
from seedsoil.util import atomic_path

log = logging.getLogger(__name__)

#: Bytes read per chunk while streaming and hashing.
CHUNK_SIZE = 1 << 20

#: HTTP statuses worth retrying: the server may answer differently next time.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class TruncatedTransfer(OSError):
    """The connection closed before the announced ``Content-Length`` arrived."""


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 digest of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _transfer(url: str, target: Path, timeout: float) -> str:
    """Stream ``url`` into ``target``; return the sha256 of what was written."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "seedsoil"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
        announced = response.headers.get("Content-Length")
        received = 0
        while True:
            try:
                chunk = response.read(CHUNK_SIZE)
            except http.client.IncompleteRead as error:
                raise TruncatedTransfer(f"connection closed after {received} bytes") from error
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
    if announced is not None and received != int(announced):
        raise TruncatedTransfer(f"received {received} of {announced} announced bytes")
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The body streams into a temporary file in ``dest``'s folder, which is renamed onto
    ``dest`` only when complete. Network errors, transient HTTP statuses (5xx, 408, 429) and
    truncated transfers are retried up to ``retries`` attempts in total, waiting
    ``backoff * 2**(attempt - 1)`` seconds between attempts. Other HTTP errors (404, 403 …)
    and a sha256 mismatch are not retried: they raise :class:`InputError` at once.
    """
    dest = Path(dest)
    expected = sha256.strip().lower() if sha256 else None
    last_error: BaseException | None = None
    for attempt in range(1, retries + 1):
        try:
            with atomic_path(dest) as tmp:
                actual = _transfer(url, tmp, timeout)
                if expected is not None and actual != expected:
                    raise InputError(
                        f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}. "
                        "The file changed at the source or the sheet's sha256 column is wrong: "
                        "check the source, then update the sha256 column (or leave it empty)."
                    )
            return dest
        except urllib.error.HTTPError as error:
            if error.code not in TRANSIENT_STATUSES:
                raise InputError(
                    f"cannot download {url}: HTTP {error.code} {error.reason}. "
                    "Check the URL in the dataset sheet's source column."
                ) from error
            last_error = error
        except (urllib.error.URLError, TimeoutError, ConnectionError, TruncatedTransfer) as error:
            last_error = error
        log.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, last_error)
        if attempt < retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise InputError(
        f"cannot download {url} after {retries} attempts; last error: {last_error}. "
        "Check the network connection and the URL, or download the file by hand and give its path."
    ) from last_error


def url_filename(url: str) -> str:
    """The file name a download of ``url`` is stored under: the last path segment, else ``download``."""
    return PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
