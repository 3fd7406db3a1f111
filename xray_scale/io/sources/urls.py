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
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``...), the clients'
own config files (``~/.aws/config``...), and the run's storage options
(``--storage-option KEY=VALUE``), set for a block of code by
:func:`url_options` and carried into each task by :class:`UrlOptions`. None is
written into the store, a log or an error message: a message names the URL,
without any ``user:password@`` part it may hold, and the kind of failure.

An S3 client gives up on an endpoint that does not answer within bounds
(:data:`S3_CLIENT_CONFIG`: 5 s to connect, 10 s to answer, 2 attempts, and
:data:`S3_TRIES` of s3fs's own tries of a request that timed out), not after
the clients' defaults of many minutes; ``--storage-option
config_kwargs='{...}'`` overrides any of botocore's, and ``AWS_MAX_ATTEMPTS``
or ``AWS_RETRY_MODE`` in the environment leave the retries to botocore.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ...errors import InputError, UnreachableError, UrlError
from ..formats.registry import is_image_name, suffix_patterns

__all__ = [
    "S3_CLIENT_CONFIG",
    "S3_TRIES",
    "UrlError",
    "UrlOptions",
    "bounded",
    "client_options",
    "is_unreachable",
    "is_url",
    "list_url_inputs",
    "open_url",
    "read_url",
    "read_url_input",
    "redact",
    "url_exists",
    "url_filesystem",
    "url_identity",
    "url_options",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = set("*?[")
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
"""What a glob keeps besides PNGs: archives, which the caller opens."""

S3_CLIENT_CONFIG = {
    "connect_timeout": 5,
    "read_timeout": 10,
    "retries": {"max_attempts": 2, "mode": "standard"},
}
"""botocore settings of every S3 client we open, unless the options or environment set them.

botocore's own defaults (60 s to connect, 60 s to answer, and retries)
leave a run waiting many minutes on an endpoint that went away; with
these, an endpoint that refuses connections is given up within seconds.
"""

S3_TRIES = 2
"""Tries s3fs makes of a request that timed out (its default: 5), each with botocore's attempts.

So a server that accepts connections but never answers is given up after
about ``S3_TRIES * 2 attempts * 10 s``, not s3fs's 5 tries of botocore's.
"""

_OPTIONS: ContextVar[dict | None] = ContextVar("xray_scale_url_options", default=None)


def client_options(protocol: str, options: Mapping | None = None) -> dict:
    """``options`` for a file system of ``protocol``, with our bounded S3 client settings.

    Examples
    --------
    >>> config = client_options("s3", {"config_kwargs": {"read_timeout": 5}})["config_kwargs"]
    >>> config["connect_timeout"], config["read_timeout"]
    (5, 5)
    >>> client_options("https", {"anon": True})
    {'anon': True}
    """
    options = dict(options or {})
    if protocol not in ("s3", "s3a"):
        return options
    defaults = dict(S3_CLIENT_CONFIG)
    if "AWS_MAX_ATTEMPTS" in os.environ or "AWS_RETRY_MODE" in os.environ:
        del defaults["retries"]  # the user set botocore's retries where botocore reads them
    options["config_kwargs"] = {**defaults, **options.get("config_kwargs", {})}
    return options


def bounded(filesystem):
    """``filesystem``, making at most :data:`S3_TRIES` tries of a request if it is s3fs's."""
    if getattr(filesystem, "retries", 0) > S3_TRIES and "s3" in filesystem.protocol:
        filesystem.retries = S3_TRIES
    return filesystem


@contextlib.contextmanager
def url_options(options: Mapping | None):
    """Open every URL input in this block, in this thread, with fsspec ``options``.

    Parameters
    ----------
    options : mapping or None
        fsspec storage options (``endpoint_url``, ``key``, ``secret``,
        ``anon``...), for the file system of each URL; None or empty: the
        client's own defaults (environment, config files).
    """
    token = _OPTIONS.set(dict(options or {}))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


@dataclass(frozen=True)
class UrlOptions:
    """Storage options that travel with a task: calling it runs a function under them.

    ``UrlOptions(json)(function, *args)`` is ``function(*args)`` inside
    :func:`url_options`; the options are left out of its ``repr``, so a task
    shown by a scheduler or in a log prints no credential.

    Attributes
    ----------
    options : str
        fsspec storage options as JSON; never printed.
    """

    options: str = field(default="{}", repr=False)

    def __call__(self, function: Callable, /, *args, **kwargs):
        with url_options(json.loads(self.options)):
            return function(*args, **kwargs)


def _protocol(link: str) -> str:
    return link.split("://", 1)[0] if _SCHEME.match(link) else "file"


def _open_options(url: str) -> dict:
    """The keyword arguments of ``fsspec.open``/``url_to_fs`` for ``url`` under the options.

    In a chained URL (``zip://member::s3://bucket/k.zip``) the options belong
    to the links that reach storage, so each inner link's protocol gets them.
    """
    options = _OPTIONS.get() or {}
    links = url.split("::")
    if len(links) == 1:
        return client_options(_protocol(url), options)
    return {_protocol(link): client_options(_protocol(link), options) for link in links[1:]}


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


def is_unreachable(error: BaseException) -> bool:
    """Whether a client's error says the server could not be reached (or answered too late).

    Each client has its own classes (botocore's ``EndpointConnectionError``,
    aiohttp's ``ServerDisconnectedError``...): any class of the error's
    hierarchy named for a connection or a timeout counts.
    """
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    names = [kind.__name__ for kind in type(error).__mro__]
    return any(word in name for name in names for word in ("Connect", "Timeout", "ClientOSError"))


def _describe(error: BaseException) -> str:
    """Why a request failed, in words that hold no credential."""
    if isinstance(error, FileNotFoundError):
        return "not found (no such bucket, object or page)"
    if isinstance(error, PermissionError):
        return "access denied (check the credentials and the bucket's policy)"
    name = type(error).__name__
    text = str(error).splitlines()[0] if str(error) else ""
    if is_unreachable(error):
        return f"the server cannot be reached ({name})"
    if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text or "credentials" in text:
        return "the credentials are refused (check AWS_ACCESS_KEY_ID and its secret)"
    return f"{name}"


def url_filesystem(url: str):
    """``(fsspec file system, path inside it)`` of ``url``, opened with the current options.

    Raises
    ------
    InputError
        If fsspec has no file system for the URL's scheme, or the options do not fit it.
    """
    import fsspec.core

    try:
        filesystem, path = fsspec.core.url_to_fs(url, **_open_options(url))
    except (ImportError, ValueError, TypeError) as error:
        raise InputError(f"cannot open {redact(url)}: {error}") from None
    return bounded(filesystem), path


def _zip_members(url: str) -> list[str]:
    import fsspec

    archive = fsspec.filesystem("zip", fo=url, target_options=_open_options(url))
    return [f"zip://{name}::{url}" for name in archive.find("") if is_image_name(name)]


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
    filesystem, path = url_filesystem(url)
    try:
        if url.lower().endswith(".zip") and filesystem.isfile(path):
            found = _zip_members(url)
        elif _GLOB_CHARS & set(path):
            found = [
                filesystem.unstrip_protocol(p)
                for p in filesystem.glob(path)
                if is_image_name(p) or p.lower().endswith(_ARCHIVE_SUFFIXES)
            ]
        elif is_image_name(path) and filesystem.isfile(path):
            found = [url]
        else:
            found = [
                filesystem.unstrip_protocol(p) for p in filesystem.find(path) if is_image_name(p)
            ]
    except Exception as error:  # each client has its own errors; say which URL, not how
        raise InputError(f"cannot list {redact(url)}: {_describe(error)}") from None
    if not found:
        raise InputError(f"no {suffix_patterns()} under {redact(url)}")
    return sorted(set(found))


def _read(url: str) -> bytes:
    import fsspec

    links = url.split("::")
    if len(links) == 1:
        filesystem, path = url_filesystem(url)
        return filesystem.cat_file(path)
    for link in links[1:]:  # the clients fsspec.open reuses (fsspec caches them): bounded
        url_filesystem(link)
    with fsspec.open(url, "rb", **_open_options(url)) as file:
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
        kind = UnreachableError if is_unreachable(error) else UrlError
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
        filesystem, path = url_filesystem(url)
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
        filesystem, path = url_filesystem(url)
        filesystem.invalidate_cache(path)  # a listing made earlier may hold an older ETag
        info = filesystem.info(path)
    except InputError:
        raise
    except Exception as error:  # each client has its own errors; say which URL, not how
        kind = UnreachableError if is_unreachable(error) else UrlError
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
    filesystem, path = url_filesystem(url)
    if blocks > 1:
        cache = {"cache_type": "blockcache", "cache_options": {"maxblocks": blocks}}
    else:
        cache = {"cache_type": "readahead"}
    return filesystem.open(path, "rb", block_size=block_size, **cache)
