"""Inputs at URLs: ``s3://``, ``gs://``, ``https://`` and fsspec's chained URLs, read with fsspec.

A URL input is a prefix (``s3://bucket/cxr8/``, every ``*.png`` under it), a
glob (``s3://bucket/cxr8/images_00*/images/*.png``), one PNG, or a zip in a
bucket (``s3://bucket/cxr8.zip``: its ``*.png`` members, each then named by
fsspec's chained URL ``zip://images_001/images/x.png::s3://bucket/cxr8.zip``,
read by range requests, never downloaded whole). Every input found is a URL
string, so a task carries nothing but strings and each worker process opens
the file systems it needs itself.

Credentials and endpoints come from where each client looks: the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``...) and the clients'
own config files (``~/.aws/config``...). None is written into the store, a log
or an error message: a message names the URL, without any ``user:password@``
part it may hold, and the kind of failure.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from ..errors import InputError, UnreachableError, UrlError

__all__ = [
    "UrlError",
    "is_url",
    "list_url_inputs",
    "read_url",
    "read_url_input",
    "redact",
    "url_exists",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = set("*?[")
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
"""What a glob keeps besides PNGs: archives, which the caller opens."""


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://...``, chained ones too), not a local path.

    Examples
    --------
    >>> [is_url(t) for t in ("s3://b/x.png", "zip://a.png::s3://b/k.zip", "/data/x.png", "x::y")]
    [True, True, False, False]
    """
    return bool(_SCHEME.match(text))


def redact(url: str) -> str:
    """``url`` without the ``user:password@`` part of any of its links.

    Examples
    --------
    >>> redact("https://me:secret@example.org/images/x.png")
    'https://example.org/images/x.png'
    >>> redact("zip://a.png::s3://bucket/k.zip")
    'zip://a.png::s3://bucket/k.zip'
    """
    links = []
    for link in url.split("::"):
        parts = urlsplit(link) if _SCHEME.match(link) else None
        if parts is not None and "@" in parts.netloc:
            link = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
        links.append(link)
    return "::".join(links)


def _unreachable(error: BaseException) -> bool:
    """Whether a client's error says the server could not be reached (or answered too late)."""
    name = type(error).__name__
    return isinstance(error, ConnectionError | TimeoutError) or any(
        word in name for word in ("Connect", "Timeout", "ClientOSError")
    )


def _describe(error: BaseException) -> str:
    """Why a request failed, in words that hold no credential."""
    if isinstance(error, FileNotFoundError):
        return "not found (no such bucket, object or page)"
    if isinstance(error, PermissionError):
        return "access denied (check the credentials and the bucket's policy)"
    name = type(error).__name__
    text = str(error).splitlines()[0] if str(error) else ""
    if _unreachable(error):
        return f"the server cannot be reached ({name})"
    if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text or "credentials" in text:
        return "the credentials are refused (check AWS_ACCESS_KEY_ID and its secret)"
    return f"{name}"


def _filesystem(url: str):
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise InputError(f"cannot open {redact(url)}: {error}") from None


def _is_png(path: str) -> bool:
    return path.lower().endswith(".png")


def _zip_members(url: str) -> list[str]:
    import fsspec

    archive = fsspec.filesystem("zip", fo=url)
    return [f"zip://{name}::{url}" for name in archive.find("") if _is_png(name)]


def list_url_inputs(url: str) -> list[str]:
    """The PNG URLs one URL input stands for, sorted.

    Parameters
    ----------
    url : str
        A prefix, a glob, one PNG, or a ``.zip`` object.

    Returns
    -------
    list of str
        Full URLs (``s3://bucket/key.png``, or chained ones for zip members);
        a glob also keeps the archives it matches (``.tar``, ``.tar.gz``,
        ``.tgz``, ``.zip``), for the caller to open.

    Raises
    ------
    InputError
        If the URL matches nothing or cannot be listed; the message names the
        URL without credentials and says why (not found, access denied, the
        server cannot be reached, credentials refused).
    """
    filesystem, path = _filesystem(url)
    try:
        if url.lower().endswith(".zip") and filesystem.isfile(path):
            found = _zip_members(url)
        elif _GLOB_CHARS & set(path):
            found = [
                filesystem.unstrip_protocol(p)
                for p in filesystem.glob(path)
                if _is_png(p) or p.lower().endswith(_ARCHIVE_SUFFIXES)
            ]
        elif _is_png(path) and filesystem.isfile(path):
            found = [url]
        else:
            found = [filesystem.unstrip_protocol(p) for p in filesystem.find(path) if _is_png(p)]
    except Exception as error:  # each client has its own errors; say which URL, not how
        raise InputError(f"cannot list {redact(url)}: {_describe(error)}") from None
    if not found:
        raise InputError(f"no *.png under {redact(url)}")
    return sorted(set(found))


def _read(url: str) -> bytes:
    import fsspec

    with fsspec.open(url, "rb") as file:
        return file.read()


def read_url(url: str) -> bytes:
    """The bytes at one URL (an object, a page, or a zip member by its chained URL).

    Raises
    ------
    UnreachableError
        If the server cannot be reached: the caller should stop, not fail the image.
    UrlError
        For any other failure, naming the URL without credentials, and why.
    """
    try:
        return _read(url)
    except Exception as error:  # each client has its own errors; say which URL, not how
        kind = UnreachableError if _unreachable(error) else UrlError
        raise kind(f"cannot read {redact(url)}: {_describe(error)}") from None


def read_url_input(url: str, what: str) -> bytes:
    """The bytes of a list or manifest at ``url``; an input error (exit 2) if unreadable.

    Parameters
    ----------
    url : str
    what : str
        What the file is, for the message (``"list"``, ``"manifest"``).

    Raises
    ------
    InputError
        Naming the URL without credentials, and why.
    """
    try:
        return _read(url)
    except Exception as error:  # each client has its own errors; say which URL, not how
        raise InputError(f"cannot read {what} {redact(url)}: {_describe(error)}") from None


def url_exists(url: str) -> bool:
    """Whether the object, page or zip member at ``url`` can be found (False on any error)."""
    try:
        filesystem, path = _filesystem(url)
        return bool(filesystem.isfile(path))
    except Exception:  # unreachable, denied or unknown: not there for this purpose
        return False


def url_identity(url: str) -> tuple[int, str]:
    """``(size, version)`` of the object at ``url``: its byte count and its ETag.

    The version changes whenever the object is replaced (an ETag, or the
    modification time where a server gives no ETag), so what was computed
    from the object can be checked against it before use.

    Raises
    ------
    UnreachableError
        If the server cannot be reached.
    UrlError
        If the object cannot be found or read, naming the URL without
        credentials, and why.
    """
    try:
        filesystem, path = _filesystem(url)
        filesystem.invalidate_cache(path)  # a listing made earlier may hold an older ETag
        info = filesystem.info(path)
    except InputError:
        raise
    except Exception as error:  # each client has its own errors; say which URL, not how
        kind = UnreachableError if _unreachable(error) else UrlError
        raise kind(f"cannot read {redact(url)}: {_describe(error)}") from None
    version = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")
    return int(info["size"]), str(version or "").strip('"')


def open_url(url: str, *, block_size: int, blocks: int = 1):
    """A seekable binary file object on the object at ``url``, read by range requests.

    With ``blocks`` 1, each read past what was fetched asks for ``block_size``
    bytes more (read-ahead); with more, the last ``blocks`` blocks of
    ``block_size`` are kept, so that a reader stepping back a little (as a
    gzip indexer does) does not fetch them again. s3fs's files ask for each
    range only if the object still has the ETag it had when opened, so an
    object replaced meanwhile fails the read instead of mixing two versions.
    """
    filesystem, path = _filesystem(url)
    if blocks > 1:
        cache = {"cache_type": "blockcache", "cache_options": {"maxblocks": blocks}}
    else:
        cache = {"cache_type": "readahead"}
    return filesystem.open(path, "rb", block_size=block_size, **cache)


def is_unreachable(error: BaseException) -> bool:
    """Whether a client's error says the server could not be reached (or answered too late)."""
    return _unreachable(error)
