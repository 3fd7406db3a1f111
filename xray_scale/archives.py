"""The dump's own archives as inputs, read in place: ``.tar``, ``.tar.gz``/``.tgz`` and ``.zip``.

NIH ships ChestX-ray8 as ``images_001.tar.gz`` ... ``images_012.tar.gz`` (each
holding ``images/NNNNNNNN_NNN.png``), Kaggle as one ``.zip`` whose folders are
``images_001/images/*.png`` ...; neither is extracted here. The ``*.png``
members at any depth (any case, regular files and links to them) are the
inputs, each named ``ARCHIVE::MEMBER``, for example
``/data/images_001.tar.gz::images/00000001_000.png``: the archive's path, two
colons, the member's name exactly as the archive stores it. That name is
accepted back as an input (:func:`split_member_path` parses it).

Random access. A zip's central directory says where each member starts, and a
plain tar's headers are read once. A gzip stream can only be decompressed from
its start, so a ``.tar.gz`` is indexed once with ``indexed_gzip``: a seek point
(with the 32 KiB of data before it) every MiB of the tar, and the tar's member
table (each member's offset and size), both saved in one index file. Reading a
member then decompresses at most about a MiB before it plus the member itself
(measured on a 1 GB archive of the real sample: 4.5 ms a member, against 0.9 ms
for a file of an extracted folder and 20 ms with ratarmountcore's default 16
MiB spacing; building the index took 2.6 s per GB of archive; the index is
8 MB per GB).

The index file is ``ARCHIVE.xray-scale-index`` beside the archive when its
folder is writable, else in ``$XDG_CACHE_HOME/xray-scale/indexes/`` (default
``~/.cache``), named from the archive's real path, size and modification time.
It records the archive's size and modification time, and is rebuilt when
either changed, so a resumed run reuses it and a replaced archive is indexed
anew.

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
as a file would.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from .sources import InputError

__all__ = [
    "ARCHIVE_SEPARATOR",
    "INDEX_SUFFIX",
    "HANDLES_PER_ARCHIVE",
    "ArchiveError",
    "MemberError",
    "archive_kind",
    "file_name",
    "index_location",
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
INDEX_SUFFIX = ".xray-scale-index"
"""Appended to an archive's file name to name its index file."""
GZIP_SPACING = 4 << 20
"""Uncompressed bytes between two gzip seek points: a read decompresses ~half of it extra."""
HANDLES_PER_ARCHIVE = 4
"""Read handles one process opens on one archive at most (threads beyond wait)."""
GZIP_BUFFER = 256 << 10
"""Read-ahead of a gzip handle; indexed_gzip's default (4 MiB) decompressed 4 MiB per member."""

_KINDS = ((".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".tar", "tar"), (".zip", "zip"))
_FORMAT = 1
_TAR_BLOCK = 512

logger = logging.getLogger(__name__)


class ArchiveError(InputError):
    """An archive cannot be used at all; the message says which and what to do."""


class MemberError(Exception):
    """One member cannot be read; the message is one line, without the member's name."""


def archive_kind(path: str | os.PathLike) -> str | None:
    """``"tar"``, ``"tar.gz"`` or ``"zip"`` from a file name's ending (any case), else None.

    Examples
    --------
    >>> [archive_kind(p) for p in ("a/images_001.tar.gz", "x.TGZ", "k.zip", "b.tar", "c.png")]
    ['tar.gz', 'tar.gz', 'zip', 'tar', None]
    """
    name = os.fspath(path).lower()
    return next((kind for suffix, kind in _KINDS if name.endswith(suffix)), None)


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
    """
    parts = split_member_path(path)
    return os.path.basename(parts[1] if parts else path)


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


def _is_png_name(name: str) -> bool:
    return name.lower().endswith(".png")


# ------------------------------------------------------------------ the index


@dataclass
class _Index:
    """What is known of one archive: its members and, for a cut archive, where it ends.

    ``members`` maps a member's name to ``[data offset, size]`` in the
    (decompressed) tar, or to ``[-1, 0, reason]`` for a link that cannot be
    followed; for a zip it holds the names only (offset -1).
    """

    size: int
    mtime_ns: int
    members: dict[str, list]
    end: int
    cut: str = ""
    crc_unchecked: bool = False
    gzip_index: bytes = field(default=b"", repr=False)


def index_location(archive: str | os.PathLike) -> Path:
    """Where the index of ``archive`` is kept: beside it if its folder is writable, else cached.

    The cached name holds a digest of the archive's real path, size and
    modification time, so two archives of one name, or an archive replaced
    by another, never share an index.
    """
    archive = Path(archive)
    if os.access(archive.parent, os.W_OK):
        return archive.with_name(archive.name + INDEX_SUFFIX)
    stat = archive.stat()
    key = f"{os.path.realpath(archive)}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xray-scale" / "indexes" / f"{archive.name}-{digest}{INDEX_SUFFIX}"


def _save(index: _Index, location: Path) -> None:
    """Write ``index`` to ``location`` atomically (a temporary file renamed), if possible."""
    header = {
        "format": _FORMAT,
        "size": index.size,
        "mtime_ns": index.mtime_ns,
        "end": index.end,
        "cut": index.cut,
        "crc_unchecked": index.crc_unchecked,
        "members": index.members,
    }
    try:
        location.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=location.parent, prefix=location.name, suffix=".tmp", delete=False
        ) as file:
            file.write(json.dumps(header).encode() + b"\n" + index.gzip_index)
        os.replace(file.name, location)
    except OSError as error:  # a read-only cache: index again next time
        logger.warning("cannot save the archive index %s (%s)", location, error.strerror or error)


def _load(location: Path, size: int, mtime_ns: int) -> _Index | None:
    """The saved index at ``location`` if it describes this archive (size, mtime), else None."""
    try:
        data = location.read_bytes()
        line, _, gzip_index = data.partition(b"\n")
        header = json.loads(line)
    except (OSError, ValueError):
        return None
    if (header.get("format"), header.get("size"), header.get("mtime_ns")) != (
        _FORMAT,
        size,
        mtime_ns,
    ):
        return None
    return _Index(
        size,
        mtime_ns,
        header["members"],
        header["end"],
        header["cut"],
        header["crc_unchecked"],
        gzip_index,
    )


def _open_gzip(archive: str, gzip_index: bytes = b"", *, check_crc: bool = True):
    import indexed_gzip

    stream = indexed_gzip.IndexedGzipFile(
        archive,
        spacing=GZIP_SPACING,
        buffer_size=GZIP_BUFFER,
        auto_build=True,
        skip_crc_check=not check_crc,
    )
    if gzip_index:
        stream.import_index(fileobj=io.BytesIO(gzip_index))
    return stream


def _resolve_links(links: dict[str, str], members: dict[str, list]) -> None:
    """Give each link member its target's offset and size, or why it cannot be read."""
    for name, target in links.items():
        seen = {name}
        while target in links and target not in seen:  # a link to a link
            seen.add(target)
            target = links[target]
        if target in members and members[target][0] >= 0:
            members[name] = list(members[target][:2])
        else:
            members[name] = [-1, 0, f"a link to {target!r}, which is not a file in the archive"]


def _link_target(member: tarfile.TarInfo) -> str:
    if member.islnk():  # hard links name their target from the archive's root
        return member.linkname
    return os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname))


def _index_tar(archive: str, stream) -> _Index:
    """Read every tar header of ``stream`` once; a cut or corrupt stream keeps what came before."""
    members: dict[str, list] = {}
    links: dict[str, str] = {}
    cut = ""
    reached = 0  # where the data read without error ends
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                reached = tar.offset
                if not _is_png_name(member.name):
                    continue
                if member.isfile():
                    members[member.name] = [member.offset_data, member.size]
                elif member.islnk() or member.issym():
                    links[member.name] = _link_target(member)
            stream.seek(tar.offset)
            if stream.read(_TAR_BLOCK) != bytes(_TAR_BLOCK):
                cut = "it ends without the end-of-archive marker"
    except (tarfile.ReadError, EOFError, OSError) as error:
        if not members and not links:
            raise ArchiveError(
                f"cannot read {archive!r} as a {archive_kind(archive)} archive ({error}); "
                "check that the file is complete and is the archive its name says"
            ) from None
        cut = f"it is cut short or corrupt ({error})"
    _resolve_links(links, members)
    try:
        end = stream.seek(0, os.SEEK_END)
    except OSError:  # a gzip stream whose end fails its check: trust what was read
        end = reached
    stat = os.stat(archive)
    return _Index(stat.st_size, stat.st_mtime_ns, members, end, cut)


def _build(archive: str, kind: str) -> _Index:
    if kind == "zip":
        stat = os.stat(archive)
        with _open_zip(archive) as handle:
            names = [i.filename for i in handle.infolist() if _is_png_name(i.filename)]
        return _Index(stat.st_size, stat.st_mtime_ns, {n: [-1, 0] for n in names}, 0)
    if kind == "tar":
        with open(archive, "rb") as stream:
            return _index_tar(archive, stream)
    try:
        index = _index_gzip(archive, check_crc=True)
    except ArchiveError:  # nothing read: not gzip, or a small archive whose CRC-32 is wrong
        index = None
    if index is None or index.cut:  # cut short, or is only the gzip CRC-32 wrong?
        try:
            unchecked = _index_gzip(archive, check_crc=False)
        except ArchiveError:
            if index is None:
                raise
            return index
        if index is None or not unchecked.cut:  # keep every member the data holds
            index = unchecked
            index.crc_unchecked = True
            index.cut = unchecked.cut or "its data does not match the gzip CRC-32 at its end"
    return index


def _index_gzip(archive: str, *, check_crc: bool) -> _Index:
    """The index of a ``.tar.gz``: its tar's member table and the gzip seek points."""
    try:
        stream = _open_gzip(archive, check_crc=check_crc)
    except OSError as error:
        raise ArchiveError(f"cannot open {archive!r} as gzip ({error})") from None
    with stream:
        index = _index_tar(archive, stream)
        exported = io.BytesIO()
        stream.export_index(fileobj=exported)
    index.gzip_index = exported.getvalue()
    return index


def _open_zip(archive: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise ArchiveError(
            f"cannot read {archive!r} as a zip archive ({error}); a zip cut short has lost "
            "its table of contents: download it again"
        ) from None


def _index(archive: str, kind: str) -> _Index:
    """The index of ``archive``: the saved one if it fits the archive, else built and saved."""
    try:
        stat = os.stat(archive)
    except OSError as error:
        raise ArchiveError(f"cannot read archive {archive!r}: {error.strerror or error}") from None
    if kind == "zip":  # the central directory is the index
        return _build(archive, kind)
    location = index_location(archive)
    index = _load(location, stat.st_size, stat.st_mtime_ns)
    if index is None:
        logger.info("indexing %s (once; saved to %s)", archive, location)
        index = _build(archive, kind)
        _save(index, location)
    return index


def _warn_damage(archive: str, index: _Index) -> None:
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
    path = os.path.abspath(archive)
    kind = archive_kind(path)
    if kind is None:
        raise ArchiveError(f"{path!r} is not a .tar, .tar.gz, .tgz or .zip archive")
    index = _index(path, kind)
    if index.cut:
        _warn_damage(path, index)
    return sorted(member_path(path, name) for name in index.members)


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
        self.index = _index(archive, self.kind)
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
                return _open_zip(self.archive)
            if self.kind == "tar":
                return open(self.archive, "rb")
            return _open_gzip(
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
            if self.kind == "tar":
                return os.pread(handle.fileno(), size, offset)
            return handle.pread(size, offset)
        except zipfile.BadZipFile as error:
            raise MemberError(f"corrupt in the archive: {error}") from None
        except (OSError, EOFError, ValueError) as error:
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


def _opened(archive: str) -> _Open:
    """This process's :class:`_Open` of ``archive``, opened on first use."""
    with _OPENED_LOCK:
        opened = _OPENED.get(archive)
        if opened is not None:
            _OPENED.move_to_end(archive)
            return opened
    opened = _Open(archive)
    with _OPENED_LOCK:
        opened = _OPENED.setdefault(archive, opened)
        stale = [_OPENED.popitem(last=False)[1] for _ in range(len(_OPENED) - _KEEP_OPEN)]
    for old in stale:  # a handle still reading is closed when it is dropped
        old.close()
    return opened


def member_exists(path: str) -> bool:
    """Whether ``ARCHIVE::MEMBER`` names a member its archive holds (the archive readable)."""
    parts = split_member_path(path)
    if parts is None or not os.path.isfile(parts[0]):
        return False
    try:
        return parts[1] in _opened(parts[0]).index.members
    except ArchiveError:
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
    """
    parts = split_member_path(path)
    if parts is None:
        raise MemberError(f"{path!r} is not an ARCHIVE::MEMBER name")
    archive, member = parts
    try:
        opened = _opened(archive)
    except ArchiveError as error:
        raise MemberError(str(error)) from None
    return opened.read(member)
