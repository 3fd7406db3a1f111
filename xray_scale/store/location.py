"""Where a store lives: a local folder, or a URL on object storage (``s3://``, any fsspec URL).

A URL store is read and written with zarr's ``FsspecStore`` (measured beside
zarr's obstore-backed ``ObjectStore`` by ``benchmarks/bench_object_store.py``).
Credentials and endpoints come from where the storage client looks for them:
the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``...), the client's config files (``~/.aws/config``,
``~/.aws/credentials``...), and ``--storage-option KEY=VALUE`` (fsspec's
options of the file system: ``endpoint_url``, ``key``, ``secret``, ``anon``...).
None of them is ever written into the store, a log or an error message: a
:class:`StoreLocation` prints as its URL, without any ``user:password@`` part,
and its options are left out of its ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StoreError
from ..io.urls import is_url, redact

__all__ = ["StoreLocation", "describe_failure", "parse_storage_options", "store_location"]


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
    if any(word in name for word in ("Connect", "Timeout", "ClientOSError")) or isinstance(
        error, ConnectionError
    ):
        return f"the server cannot be reached ({name})"
    return name


def parse_storage_options(pairs: list[str] | None) -> dict:
    """``["KEY=VALUE", ...]`` as fsspec storage options; a value that is JSON is parsed.

    Examples
    --------
    >>> parse_storage_options(["anon=true", "endpoint_url=http://127.0.0.1:9000"])
    {'anon': True, 'endpoint_url': 'http://127.0.0.1:9000'}

    Raises
    ------
    StoreError
        For an item without ``=`` (the item is not repeated: it may be a secret).
    """
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
            return fsspec.core.url_to_fs(self.url, **json.loads(self.options))
        except (ImportError, ValueError, TypeError) as error:
            raise StoreError(f"cannot open the store {self}: {error}") from None

    def zarr_store(self, *, read_only: bool = False):
        """What ``zarr.open_group`` takes: the path, or a ``FsspecStore`` for a URL."""
        if self.is_local:
            return self.url
        from zarr.storage import FsspecStore

        try:
            return FsspecStore.from_url(
                self.url, storage_options=json.loads(self.options), read_only=read_only
            )
        except (ImportError, ValueError, TypeError) as error:
            raise StoreError(f"cannot open the store {self}: {error}") from None


def store_location(
    out: str | os.PathLike | StoreLocation, options: Mapping | list[str] | None = None
) -> StoreLocation:
    """The :class:`StoreLocation` of ``--out`` (a path or a URL) and its storage options.

    ``options`` is a mapping, or ``KEY=VALUE`` strings (:func:`parse_storage_options`).

    Raises
    ------
    StoreError
        If storage options are given for a local path.
    """
    if isinstance(out, StoreLocation):
        return out
    text = os.fspath(out)
    if isinstance(options, list):
        options = parse_storage_options(options)
    if is_url(text):
        return StoreLocation(text.rstrip("/"), json.dumps(dict(options or {}), sort_keys=True))
    if options:
        raise StoreError(
            f"--storage-option applies to a store at a URL (s3://...), not to the folder {text}"
        )
    return StoreLocation(os.path.abspath(text))
