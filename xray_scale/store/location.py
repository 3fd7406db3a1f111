"""Where a store lives: a local folder, or a URL on object storage (``s3://``, any fsspec URL).

A URL store is read and written with zarr's ``FsspecStore`` (measured beside
zarr's obstore-backed ``ObjectStore`` by ``benchmarks/bench_object_store.py``).
Credentials and endpoints come from where the storage client looks for them:
the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``...), the client's config files (``~/.aws/config``,
``~/.aws/credentials``...), and ``--storage-option KEY=VALUE`` (fsspec's
options of the file system: ``endpoint_url``, ``key``, ``secret``, ``anon``...).
Its S3 client gives up on an endpoint that does not answer within the bounds
of :data:`xray_scale.io.sources.urls.S3_CLIENT_CONFIG`; while a run writes, an
endpoint gone away is a :class:`~xray_scale.errors.StoreUnreachableError` naming
the store (:func:`reaching`), so the run stops with its unfinished batches
``pending``, to be resumed. None of the credentials is ever written into the
store, a log or an error message: a :class:`StoreLocation` prints as its URL,
without any ``user:password@`` part, and its options are left out of its ``repr``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StoreError, StoreUnreachableError, UnreachableError
from ..io.sources.urls import bounded, client_options, is_unreachable, is_url, redact

__all__ = [
    "StoreLocation",
    "describe_failure",
    "parse_storage_options",
    "reaching",
    "store_location",
]


def describe_failure(error: BaseException) -> str:
    """Why a request to object storage failed, in words that hold no credential."""
    name = type(error).__name__
    text = str(error).splitlines()[0] if str(error) else ""
    if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return "no such bucket"
    refused = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken")
    if any(code in text for code in refused):
        return "the credentials are refused (check AWS_ACCESS_KEY_ID and its secret)"
    if isinstance(error, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return "access denied (check the credentials and the bucket's policy)"
    if isinstance(error, FileNotFoundError):
        return "not found (no such bucket or prefix)"
    if is_unreachable(error):
        return f"the server cannot be reached ({name})"
    return name


def parse_storage_options(pairs: list[str] | Mapping | None) -> dict:
    """``["KEY=VALUE", ...]`` as fsspec storage options; a value that is JSON is parsed.

    A mapping is returned as a dict, unchanged.

    Examples
    --------
    >>> parse_storage_options(["anon=true", "endpoint_url=http://127.0.0.1:9000"])
    {'anon': True, 'endpoint_url': 'http://127.0.0.1:9000'}

    Raises
    ------
    StoreError
        For an item without ``=`` (the item is not repeated: it may be a secret).
    """
    if isinstance(pairs, Mapping):
        return dict(pairs)
    options = {}
    for number, pair in enumerate(pairs or (), start=1):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StoreError(
                f"--storage-option number {number} is not KEY=VALUE (e.g. endpoint_url=http://...)"
            )
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


@dataclass(frozen=True)
class StoreLocation:
    """A store's place: a local folder (``url`` an absolute path) or a URL, with its options.

    Attributes
    ----------
    url : str
        The absolute local path, or the URL (``s3://bucket/cxr.zarr``).
    options : str
        fsspec storage options as JSON (for URLs only); never printed.
    """

    url: str
    options: str = field(default="{}", repr=False)

    def __str__(self) -> str:
        return redact(self.url)

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder on this machine's file system."""
        return not is_url(self.url)

    @property
    def path(self) -> Path:
        """The local folder (only for a local store)."""
        if not self.is_local:
            raise StoreError(f"{self} is a URL, not a local folder")
        return Path(self.url)

    def filesystem(self):
        """``(fsspec file system, path inside it)`` of a URL store.

        Raises
        ------
        StoreError
            If fsspec has no file system for the URL's scheme.
        """
        import fsspec.core

        try:
            filesystem, path = fsspec.core.url_to_fs(self.url, **self.client_options())
        except (ImportError, ValueError, TypeError) as error:
            raise StoreError(f"cannot open the store {self}: {error}") from None
        return bounded(filesystem), path

    def zarr_store(self, *, read_only: bool = False):
        """What ``zarr.open_group`` takes: the path, or a ``FsspecStore`` for a URL."""
        if self.is_local:
            return self.url
        from zarr.storage import FsspecStore

        try:
            store = FsspecStore.from_url(
                self.url, storage_options=self.client_options(), read_only=read_only
            )
        except (ImportError, ValueError, TypeError) as error:
            raise StoreError(f"cannot open the store {self}: {error}") from None
        bounded(store.fs)
        return store

    def client_options(self) -> dict:
        """The options its file system is opened with: ours, then the S3 client's bounds."""
        return client_options(self.url.split("://", 1)[0], json.loads(self.options))


@contextlib.contextmanager
def reaching(store: StoreLocation | str | os.PathLike):
    """Report a URL store's endpoint gone away in this block as one error naming the store.

    Any error of the storage client that says the server could not be
    reached becomes a :class:`~xray_scale.errors.StoreUnreachableError` (an
    ``OSError``: the run stops with exit 3, and the same command resumes);
    an input's own :class:`~xray_scale.errors.UnreachableError` and every
    other error pass unchanged, and so does everything about a local store.
    """
    try:
        yield
    except UnreachableError:
        raise
    except Exception as error:
        if isinstance(store, StoreLocation) and not store.is_local and is_unreachable(error):
            raise StoreUnreachableError(
                f"cannot reach the store {store}: the server cannot be reached "
                f"({type(error).__name__})"
            ) from None
        raise


def store_location(
    out: str | os.PathLike | StoreLocation, options: Mapping | list[str] | None = None
) -> StoreLocation:
    """The :class:`StoreLocation` of ``--out`` (a path or a URL) and its storage options.

    ``options`` is a mapping, or ``KEY=VALUE`` strings (:func:`parse_storage_options`);
    a local folder takes none (the options are for the run's URLs).

    Raises
    ------
    StoreError
        If an item of ``options`` is not ``KEY=VALUE``.
    """
    if isinstance(out, StoreLocation):
        return out
    text = os.fspath(out)
    if is_url(text):
        options = parse_storage_options(options)
        return StoreLocation(text.rstrip("/"), json.dumps(options, sort_keys=True))
    return StoreLocation(os.path.abspath(text))
