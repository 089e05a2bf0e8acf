"""Download CIFAR-10, CIFAR-100, MNIST and Fashion-MNIST, verified and resumable.

Every file is fetched into ``<dest>.part`` and renamed onto ``<dest>`` only
after its MD5 matches the published value, so ``<dest>`` is either absent or
complete and correct. An interrupted transfer keeps its ``.part``; the next
call asks the server for the rest with an HTTP ``Range`` request instead of
starting over (CIFAR-100 is 160 MB, which matters on a slow link).

Only the standard library is used (:mod:`urllib.request`, :mod:`hashlib`).

Examples
--------
>>> from imgclf.datasets.download import download
>>> archive = download("cifar10")  # doctest: +SKIP
>>> folder = download("mnist", "data/mnist")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from imgclf._progress import progress
from imgclf.datasets.cache import cache_dir
from imgclf.errors import DatasetError, DownloadError

__all__ = ["DATASETS", "RemoteFile", "download", "download_file"]

#: Seconds a single socket operation may block. Generous because the data
#: servers are sometimes slow to start a response, but finite so that a dead
#: connection ends in a DownloadError rather than a hang.
TIMEOUT = 60.0


class RemoteFile(NamedTuple):
    """One file of a dataset: where it is published and its MD5 hex digest."""

    url: str
    md5: str

    @property
    def filename(self) -> str:
        """The last component of :attr:`url`, used as the local file name."""
        return self.url.rsplit("/", 1)[-1]


_MNIST_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _files(base: str, names: tuple[str, ...], md5s: tuple[str, ...]) -> list[RemoteFile]:
    return [RemoteFile(base + name, md5) for name, md5 in zip(names, md5s, strict=True)]


#: Dataset name -> the files that make it up, with their official checksums.
DATASETS: dict[str, list[RemoteFile]] = {
    "cifar10": [
        RemoteFile(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        )
    ],
    "cifar100": [
        RemoteFile(
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        )
    ],
    # The mirror torchvision uses: yann.lecun.com is often down or rate-limited.
    "mnist": _files(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        _MNIST_NAMES,
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
    "fashion-mnist": _files(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        _MNIST_NAMES,
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
}


def download(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    force: bool = False,
) -> Path:
    """Download every file of dataset ``name`` into ``root`` and verify it.

    Parameters
    ----------
    name : {"cifar10", "cifar100", "mnist", "fashion-mnist"}
        A key of :data:`DATASETS`.
    root : path, optional
        Folder to put the files in. Default: ``<cache>/downloads/<name>``,
        where ``<cache>`` is ``$IMGCLF_CACHE``, else ``$XDG_CACHE_HOME/imgclf``,
        else ``~/.cache/imgclf``.
    base_url : str, optional
        Replaces everything before the file name in each official URL, for a
        mirror (or a local test server): ``base_url + "/" + filename``.
    force : bool
        Fetch again even if a verified copy is present, and discard any
        ``.part`` left by an earlier attempt. The old copy is replaced only
        once the new one is verified.

    Returns
    -------
    Path
        For a dataset published as a single archive (``cifar10``,
        ``cifar100``) the path of that ``.tar.gz`` -- the loaders read the
        archive directly, nothing is extracted. For a dataset of several
        files (``mnist``, ``fashion-mnist``) the folder holding them.

    Raises
    ------
    DatasetError
        ``name`` is not a known dataset.
    DownloadError
        A file could not be fetched or does not match its checksum.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    folder = Path(root) if root is not None else cache_dir() / "downloads" / name
    files = DATASETS[name]
    paths = [
        _download_file(_resolve(f, base_url), folder / f.filename, f.md5, force=force)
        for f in files
    ]
    return paths[0] if len(paths) == 1 else folder


def download_file(
    url: str, dest: str | os.PathLike, md5: str, *, chunk_size: int = 1 << 20
) -> Path:
    """Fetch ``url`` to ``dest``, resuming a partial download, and verify its MD5.

    Data is written to ``<dest>.part``. If that file exists from an earlier,
    interrupted attempt, the request asks for the remaining bytes only
    (``Range: bytes=N-``); a server that answers with the whole file
    (status 200) instead is handled by starting over. ``dest`` appears,
    atomically, only once its checksum is verified. If ``dest`` already exists
    with the right checksum nothing is fetched.

    Parameters
    ----------
    url : str
        Where to fetch from (``http``, ``https`` or ``file``).
    dest : path
        Where the file ends up. Its folder is created if missing.
    md5 : str
        Expected MD5 hex digest of the complete file.
    chunk_size : int
        Bytes read per step; one progress-bar step each.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DownloadError
        On a network or HTTP error (the ``.part`` is kept so that a rerun
        resumes), or when the checksum differs (the ``.part`` is deleted,
        since resuming from corrupt data cannot help).
    """
    return _download_file(url, Path(dest), md5, force=False, chunk_size=chunk_size)


def _download_file(
    url: str, dest: Path, md5: str, *, force: bool, chunk_size: int = 1 << 20
) -> Path:
    part = dest.with_name(dest.name + ".part")
    if force:
        part.unlink(missing_ok=True)
    elif dest.is_file() and _md5_of(dest) == md5.lower():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    _fetch(url, part, chunk_size)
    _verify(part, url, md5)
    # Only a verified file takes dest's name; os.replace is atomic on one
    # filesystem, and .part sits beside dest, so readers never see a torn file.
    os.replace(part, dest)
    return dest


def _resolve(remote: RemoteFile, base_url: str | None) -> str:
    if base_url is None:
        return remote.url
    return base_url.rstrip("/") + "/" + remote.filename


def _fetch(url: str, part: Path, chunk_size: int) -> None:
    """Bring ``part`` up to the complete file; raise DownloadError on failure."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            start = _start_of(response, offset, url, part)
            with open(part, "r+b" if start else "wb") as out:
                out.seek(start)
                out.truncate()
                _stream(response, out, url, chunk_size)
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Nothing left to send: the earlier attempt got every byte but
            # stopped before the rename. The checksum decides if it is good.
            return
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        # URLError, timeouts and resets are OSErrors; a connection closed
        # mid-body surfaces as http.client.IncompleteRead. Keep the .part.
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DownloadError(f"could not download {url}: {reason!r}") from exc


def _start_of(response: http.client.HTTPResponse, offset: int, url: str, part: Path) -> int:
    """Byte position in ``part`` where the response body belongs."""
    if response.status != 206:
        return 0  # the server ignored Range and sends the whole file: start over
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != offset:
        # Appending bytes from an unexpected position would corrupt the file.
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {url}: asked for bytes from {offset}, server answered "
            f"Content-Range {response.headers.get('Content-Range')!r}; partial file discarded"
        )
    return offset


def _stream(response: http.client.HTTPResponse, out: BinaryIO, url: str, chunk_size: int) -> None:
    length = response.headers.get("Content-Length")
    expected = int(length) if length is not None and length.isdigit() else None
    total = math.ceil(expected / chunk_size) if expected is not None else None
    received = 0
    for chunk in progress(_chunks(response, chunk_size), total, f"downloading {url}"):
        out.write(chunk)
        received += len(chunk)
    if expected is not None and received < expected:
        # Some servers just close the socket; without this check a short file
        # would reach the checksum and be thrown away instead of resumed.
        raise DownloadError(
            f"could not download {url}: connection closed after {received} of {expected} bytes"
        )
    out.flush()
    os.fsync(out.fileno())  # data on disk before the rename makes it visible


def _chunks(response: http.client.HTTPResponse, chunk_size: int) -> Iterator[bytes]:
    while chunk := response.read(chunk_size):
        yield chunk


def _verify(part: Path, url: str, md5: str) -> None:
    actual = _md5_of(part)
    if actual != md5.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {url}: expected MD5 {md5.lower()}, got {actual}"
        )


def _md5_of(path: Path) -> str:
    # MD5 is what the datasets publish; it checks integrity, not authenticity,
    # and usedforsecurity=False keeps it available on FIPS-restricted Pythons.
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
