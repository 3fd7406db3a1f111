"""The dump's own archives as inputs, read in place: ``.tar``, ``.tar.gz``/``.tgz`` and ``.zip``.

NIH ships ChestX-ray8 as ``images_001.tar.gz`` ... ``images_012.tar.gz`` (each
holding ``images/NNNNNNNN_NNN.png``), Kaggle as one ``.zip`` whose folders are
``images_001/images/*.png`` ...; neither is extracted here. The ``*.png``
members at any depth (any case, regular files and links to them) are the
inputs, each named ``ARCHIVE::MEMBER``, for example
``/data/images_001.tar.gz::images/00000001_000.png``: the archive's path, two
colons, the member's name exactly as the archive stores it. That name is
accepted back as an input (:func:`split_member_path` parses it).

Random access: each archive is indexed once (:mod:`.archive_index`: a zip's
own directory, a tar's headers, a ``.tar.gz``'s gzip seek points saved beside
it), so a member is read without decompressing the archive from its start.

Archives at URLs. A ``.tar`` or ``.tar.gz`` in a bucket
(``s3://bucket/images_001.tar.gz``) is read in place the same way: its
members are named ``s3://bucket/images_001.tar.gz::images/00000001_000.png``
and read by range requests (about 2 MiB of compressed data per member of a
``.tar.gz``, the member itself of a ``.tar``), never by downloading the
archive. A read asks for its range only if the object still has the ETag its
index was built from, so an archive replaced in the bucket during a run fails
that read, which is retried once on the new version with its new index. A
server that cannot be reached raises
:class:`~xray_scale.errors.UnreachableError` (the batch stays pending), not a
member's failure. A zip in a bucket is read through fsspec's chained URLs
(:mod:`.urls`).

Threads and processes. Each process opens an archive once, on its first member
(a process started by fork forgets the parent's handles), and keeps a pool of
read handles per archive: a thread takes an idle handle or opens one, so that
the run's decoding threads decompress in parallel (``indexed_gzip`` releases
the GIL while it decompresses). Tasks carry only ``ARCHIVE::MEMBER`` strings,
so they pickle to any worker process.

Damage. A ``.tar.gz`` or ``.tar`` cut short keeps the members before the cut:
the member the cut falls in fails ("truncated in the archive"), and one warning
says that the members after the cut are lost (their number cannot be read from
a cut archive; a name list or manifest names them). A zip member whose data
does not match its CRC-32 fails; a member that is not a PNG fails when decoded,
as a file would. Errors: :class:`~xray_scale.errors.ArchiveError` when an
archive cannot be used at all, :class:`~xray_scale.errors.MemberError` for one
member.
"""

from __future__ import annotations

import logging
import os
import threading
import zipfile
from collections import OrderedDict

from ...errors import ArchiveError, MemberError, UnreachableError
from .archive_index import (
    URL_READ_AHEAD,
    ArchiveIndex,
    archive_kind,
    install_indexes,
    load_index,
    open_gzip,
    open_zip,
)
from .urls import is_unreachable, is_url, open_url, redact

__all__ = [
    "ARCHIVE_SEPARATOR",
    "HANDLES_PER_ARCHIVE",
    "ArchiveError",
    "MemberError",
    "adopt_indexes",
    "archive_kind",
    "file_name",
    "is_archive",
    "list_members",
    "member_path",
    "member_exists",
    "read_member",
    "source_file",
    "split_member_path",
]

ARCHIVE_SEPARATOR = "::"
"""Between an archive's path and a member's name: ``ARCHIVE::MEMBER``."""
HANDLES_PER_ARCHIVE = 4
"""Read handles one process opens on one archive at most (threads beyond wait)."""

logger = logging.getLogger(__name__)


def is_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends like an archive: ``.tar``, ``.tar.gz``, ``.tgz`` or ``.zip``."""
    return archive_kind(path) is not None


def member_path(archive: str | os.PathLike, member: str) -> str:
    """The input name of ``member`` of ``archive``: ``ARCHIVE::MEMBER``.

    Examples
    --------
    >>> member_path("/data/images_001.tar.gz", "images/00000001_000.png")
    '/data/images_001.tar.gz::images/00000001_000.png'
    """
    return f"{os.fspath(archive)}{ARCHIVE_SEPARATOR}{member}"


def split_member_path(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(archive, member)`` of an ``ARCHIVE::MEMBER`` name, else None.

    The archive part is the shortest that ends like an archive
    (:func:`archive_kind`), so a member's name may itself hold ``::``.

    Examples
    --------
    >>> split_member_path("/data/images_001.tar.gz::images/00000001_000.png")
    ('/data/images_001.tar.gz', 'images/00000001_000.png')
    >>> split_member_path("/data/images/00000001_000.png") is None
    True
    """
    text = os.fspath(path)
    start = text.find(ARCHIVE_SEPARATOR)
    while start > 0:
        archive, member = text[:start], text[start + len(ARCHIVE_SEPARATOR) :]
        if is_archive(archive) and member:
            return archive, member
        start = text.find(ARCHIVE_SEPARATOR, start + 1)
    return None


def file_name(path: str) -> str:
    """The file name an input is known by: the last part of a path or of a member's name.

    Inputs are matched by it against a manifest or a name list.

    Examples
    --------
    >>> file_name("/data/images_001.tar.gz::images/00000001_000.png")
    '00000001_000.png'
    >>> file_name("/data/k.zip::00000001_000.png")
    '00000001_000.png'
    >>> file_name("/data/images/00000001_000.png")
    '00000001_000.png'
    >>> file_name("zip://images_001/images/00000001_000.png::s3://bucket/data.zip")
    '00000001_000.png'
    >>> file_name("/data/nih/test_list.txt::00000003_000.png")  # a listed name no input holds
    '00000003_000.png'
    """
    parts = split_member_path(path)
    if parts is not None:
        return os.path.basename(parts[1])
    links = path.split("::")
    if all("://" in link for link in links):  # a URL, or fsspec's chain: the first link's file
        return os.path.basename(links[0])
    return os.path.basename(links[-1])


def source_file(path: str) -> str:
    """The file on disk that holds an input: the archive of a member, else ``path`` itself.

    Examples
    --------
    >>> source_file("/data/images_001.tar.gz::images/00000001_000.png")
    '/data/images_001.tar.gz'
    >>> source_file("/data/images/00000001_000.png")
    '/data/images/00000001_000.png'
    """
    parts = split_member_path(path)
    return parts[0] if parts else path


def _warn_damage(archive: str, index: ArchiveIndex) -> None:
    cut = [n for n, (offset, size, *_) in index.members.items() if offset + size > index.end]
    kept = len(index.members) - len(cut)
    if index.crc_unchecked and not cut:
        logger.warning(
            "archive %s is damaged: %s. Its %d PNG members are read; each PNG's own "
            "checksums tell which is corrupt; download the archive again",
            archive,
            index.cut,
            kept,
        )
        return
    inside = f"; {cut[0]!r} is cut and fails" if cut else ""
    logger.warning(
        "archive %s is damaged: %s. %d PNG members before the damage are read%s; members "
        "after it are lost and cannot be counted from the archive (a name list or manifest "
        "records them as failed); download the archive again",
        archive,
        index.cut,
        kept,
        inside,
    )


def list_members(archive: str | os.PathLike) -> list[str]:
    """The ``*.png`` members of ``archive`` as ``ARCHIVE::MEMBER`` names, sorted.

    Builds and saves the archive's index the first time (a ``.tar.gz`` is
    read once from start to end) and reuses it afterwards. The archive's
    path is made absolute. A damaged archive keeps the members before the
    damage and logs one warning (see the module's notes).

    Parameters
    ----------
    archive : str or path-like
        A ``.tar``, ``.tar.gz``, ``.tgz`` or ``.zip`` file.

    Returns
    -------
    list of str

    Raises
    ------
    ArchiveError
        If the archive cannot be read at all (not an archive, a zip without
        its table of contents, unreadable).
    """
    text = os.fspath(archive)
    path = text if is_url(text) else os.path.abspath(text)
    kind = archive_kind(path)
    if kind is None:
        raise ArchiveError(f"{_shown(path)} is not a .tar, .tar.gz, .tgz or .zip archive")
    try:
        index = load_index(path, kind)
    except UnreachableError as error:  # before the run: an input that cannot be listed
        raise ArchiveError(str(error)) from None
    if is_url(path):
        _forget_if_changed(path, index)
    if index.cut:
        _warn_damage(_shown(path), index)
    return sorted(member_path(path, name) for name in index.members)


def _shown(archive: str) -> str:
    """An archive as messages name it: a path quoted, a URL without credentials."""
    return redact(archive) if is_url(archive) else repr(archive)


# ------------------------------------------------------------------ reading


class _Open:
    """One archive opened in this process: its index and a pool of read handles.

    A thread takes an idle handle, or opens one while fewer than
    :data:`HANDLES_PER_ARCHIVE` are open, or waits for one; each handle of a
    ``.tar.gz`` holds the gzip index in memory (~8 MB per GB of archive).
    """

    def __init__(self, archive: str):
        self.archive = archive
        self.kind = archive_kind(archive)
        self.index = load_index(archive, self.kind)
        self._idle: list = []
        self._count = 0
        self._free = threading.Condition()

    def _take(self):
        with self._free:
            while not self._idle and self._count >= HANDLES_PER_ARCHIVE:
                self._free.wait()
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            if self.kind == "zip":
                return open_zip(self.archive)
            if self.kind == "tar" and is_url(self.archive):
                return open_url(self.archive, block_size=URL_READ_AHEAD)
            if self.kind == "tar":
                return open(self.archive, "rb")
            return open_gzip(
                self.archive, self.index.gzip_index, check_crc=not self.index.crc_unchecked
            )
        except BaseException:
            with self._free:
                self._count -= 1
                self._free.notify()
            raise

    def _give_back(self, handle) -> None:
        with self._free:
            self._idle.append(handle)
            self._free.notify()

    def read(self, member: str) -> bytes:
        entry = self.index.members.get(member)
        if entry is None:
            raise MemberError(f"not in the archive {self.archive!r}")
        offset, size, *reason = entry
        if reason:
            raise MemberError(reason[0])
        if self.kind != "zip" and offset + size > self.index.end:
            raise MemberError(
                f"truncated in the archive: it ends after {max(0, self.index.end - offset)} of "
                f"the member's {size} bytes"
            )
        handle = self._take()
        try:
            if self.kind == "zip":
                return handle.read(member)
            if self.kind == "tar" and is_url(self.archive):
                handle.seek(offset)
                return handle.read(size)
            if self.kind == "tar":
                return os.pread(handle.fileno(), size, offset)
            return handle.pread(size, offset)
        except zipfile.BadZipFile as error:
            raise MemberError(f"corrupt in the archive: {error}") from None
        except (OSError, EOFError, ValueError) as error:
            if is_url(self.archive) and is_unreachable(error):
                raise UnreachableError(
                    f"cannot read {redact(self.archive)}: the server cannot be reached "
                    f"({type(error).__name__})"
                ) from None
            if is_url(self.archive) and isinstance(error, OSError):
                raise _Replaced() from None  # replaced since it was opened: the caller reopens
            raise MemberError(f"cannot read it from the archive: {error}") from None
        finally:
            self._give_back(handle)

    def close(self) -> None:
        """Close the idle handles (a handle still reading is closed when it is dropped)."""
        with self._free:
            for handle in self._idle:
                handle.close()
            self._count -= len(self._idle)
            self._idle.clear()


class _Replaced(Exception):
    """A read of an archive at a URL failed: it may have been replaced since it was opened."""


_OPENED: OrderedDict[str, _Open] = OrderedDict()
_OPENED_LOCK = threading.Lock()
_KEEP_OPEN = 2
"""Archives whose handles a process keeps; a run reads its archives mostly one after another."""


def _forget_opened() -> None:
    """In a child made by fork: the parent's handles and locks are not this process's."""
    global _OPENED_LOCK
    _OPENED.clear()
    _OPENED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_opened)


def _forget(archive: str, opened: _Open | None = None) -> None:
    """Drop this process's :class:`_Open` of ``archive`` (only if it is ``opened``, if given)."""
    with _OPENED_LOCK:
        current = _OPENED.get(archive)
        if current is None or (opened is not None and current is not opened):
            return
        del _OPENED[archive]
    current.close()


def _forget_if_changed(archive: str, index: ArchiveIndex) -> None:
    """Drop the :class:`_Open` of a URL archive whose index is not ``index`` (it was replaced)."""
    with _OPENED_LOCK:
        opened = _OPENED.get(archive)
    if opened is not None and opened.index.identity != index.identity:
        _forget(archive, opened)


def adopt_indexes(indexes: dict[str, bytes]) -> None:
    """On a worker: keep the indexes the driver shipped, and reopen archives at URLs.

    Called as each run starts, so that a worker kept from an earlier run
    reads each URL archive anew, with the index of its current version.
    """
    install_indexes(indexes)
    with _OPENED_LOCK:
        urls = [archive for archive in _OPENED if is_url(archive)]
    for archive in urls:
        _forget(archive)


def _opened(archive: str) -> _Open:
    """This process's :class:`_Open` of ``archive``, opened on first use or once it changed.

    A file's size and modification time are compared with its index's on
    every use (one ``stat``), so an archive replaced in place is read anew. An
    archive at a URL is checked when it is opened; a read of a replaced one
    fails its ETag condition and :func:`read_member` opens it again.
    """
    if is_url(archive):
        with _OPENED_LOCK:
            opened = _OPENED.get(archive)
            if opened is not None:
                _OPENED.move_to_end(archive)
                return opened
    else:
        try:
            stat = os.stat(archive)
        except OSError as error:
            raise ArchiveError(
                f"cannot read archive {archive!r}: {error.strerror or error}"
            ) from None
        with _OPENED_LOCK:
            opened = _OPENED.get(archive)
            if opened is not None:
                _OPENED.move_to_end(archive)
                if (opened.index.size, opened.index.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                    return opened
    fresh = _Open(archive)
    with _OPENED_LOCK:
        current = _OPENED.get(archive)
        if current is None or current is opened:  # not replaced by another thread meanwhile
            _OPENED[archive] = current = fresh
        _OPENED.move_to_end(archive)
        stale = [_OPENED.popitem(last=False)[1] for _ in range(len(_OPENED) - _KEEP_OPEN)]
    for old in [*stale, *([opened] if opened is not None and opened is not current else [])]:
        old.close()  # a handle still reading is closed when it is dropped
    return current


def member_exists(path: str) -> bool:
    """Whether ``ARCHIVE::MEMBER`` names a member its archive holds (the archive readable)."""
    parts = split_member_path(path)
    if parts is None or not (is_url(parts[0]) or os.path.isfile(parts[0])):
        return False
    try:
        return parts[1] in _opened(parts[0]).index.members
    except (ArchiveError, UnreachableError):
        return False


def read_member(path: str) -> bytes:
    """The bytes of one member, by random access: ``read_member("A.tar.gz::images/x.png")``.

    Safe from many threads at once; the archive is opened in this process on
    its first member (index loaded, or built if there is none yet).

    Parameters
    ----------
    path : str
        An ``ARCHIVE::MEMBER`` name, as :func:`list_members` gives.

    Returns
    -------
    bytes

    Raises
    ------
    MemberError
        If the member is not in the archive, is cut by the archive's damage,
        fails its CRC-32 (zip) or cannot be read; or if the archive itself
        cannot be opened.
    UnreachableError
        If the archive is at a URL whose server cannot be reached.
    """
    parts = split_member_path(path)
    if parts is None:
        raise MemberError(f"{path!r} is not an ARCHIVE::MEMBER name")
    archive, member = parts
    for _ in range(2):
        try:
            opened = _opened(archive)
        except ArchiveError as error:
            raise MemberError(str(error)) from None
        try:
            return opened.read(member)
        except _Replaced:
            _forget(archive, opened)  # then opened again: a new version gets its new index
    raise MemberError(f"cannot read it from {redact(archive)}: it changes while it is read")
