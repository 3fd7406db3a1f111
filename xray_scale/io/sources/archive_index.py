"""The index of one archive, built once and saved: its image members and where each one starts.

A zip's central directory is its index, read when it is opened. A plain tar's
headers are read once, seeking past each member's data. A gzip stream can only
be decompressed from its start, so a ``.tar.gz`` is indexed once with
``indexed_gzip``: a seek point every 4 MiB of the tar, each with the 32 KiB of
data before it, and the tar's member table (each member's offset and size),
saved together in one index file. Reading a member then decompresses on
average 2 MiB before it plus the member itself.

Measured on a 1 GB ``.tar.gz`` of copies of the 9 real sample images
(``benchmarks/bench_archives.py``, 2-core VM, shared): indexed_gzip indexed it
in 2.6-4.5 s per GB and read a random member in 4.5-7.3 ms with its default
4 MiB read-ahead (2.2 ms with a 256 KiB one; its unbuffered reader, used here
since, 0.9 ms where the 256 KiB buffered one took 1.9 ms on an 82 MB archive,
decompressing 2.7 MB per member instead of 4.5 MB); rapidgzip indexed as fast
and read in 5.8-9.9 ms, but its reader aborted the process at exit after
reading a cut archive; ratarmountcore (which drives indexed_gzip with a 16 MiB
spacing and keeps its index in SQLite) read in 20-60 ms with 2-3x the memory.
The index is 8 MB per GB of archive.

The index file is ``ARCHIVE.xray-scale-index`` beside the archive when its
folder is writable, else in ``$XDG_CACHE_HOME/xray-scale/indexes/`` (default
``~/.cache``), named from the archive's real path, size and modification time.
It records the archive's size and modification time and is rebuilt when either
changed, so a resumed run reuses it and a replaced archive is indexed anew.
Its members are those whose names end in a registered format's suffix
(:func:`xray_scale.io.formats.registry.is_image_name`); it records those
suffixes too, and is rebuilt when other formats are registered.

An archive at a URL (``s3://bucket/images_001.tar.gz``, a plain ``.tar``
too) is indexed by one streaming pass over the object, and its members are
then read by range requests. Its index is kept in the same cache folder, named
from the URL, the object's size and its ETag, and records both: an object
replaced in the bucket has another ETag, so its index is built anew, never
used stale. It is not written beside the archive: a dataset's bucket is often
read-only (a public copy) or shared, and xray-scale writes nothing among
anyone's inputs. Nor in the output store: listing the inputs, ``plan`` and
``render`` need it before or without a store. A dask cluster's workers share
no disk with the driver, so the driver ships the indexes of the run's URL
archives to every worker, present or joining later, before the first task
(:func:`portable_indexes`, :func:`install_indexes`): 8 MB per GB of archive
sent once to each worker, where building it again would read the whole
archive once per worker. A process that has neither builds it itself.

Damage. A tar (compressed or not) cut short keeps the members before the cut,
and its index says where the data ends, so the member the cut falls in fails
when read. A ``.tar.gz`` whose data does not match the gzip trailer's CRC-32 is
read again without that check, so that no member is lost to it (each PNG's own
chunk CRCs are still checked when decoded).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ArchiveError, UnreachableError, UrlError
from ..formats.registry import image_suffixes, is_image_name
from .urls import is_url, open_url, redact, url_identity

__all__ = [
    "GZIP_BUFFER",
    "archive_kind",
    "GZIP_SPACING",
    "INDEX_SUFFIX",
    "ArchiveIndex",
    "index_location",
    "install_indexes",
    "load_index",
    "open_gzip",
    "open_zip",
    "portable_indexes",
]

INDEX_SUFFIX = ".xray-scale-index"
"""Appended to an archive's file name to name its index file."""
GZIP_SPACING = 4 << 20
"""Uncompressed bytes between two gzip seek points: a read decompresses ~half of it extra."""
GZIP_BUFFER = 256 << 10
"""Buffer of the indexing pass's gzip file (``tarfile`` reads its headers through it)."""
URL_READ_AHEAD = 1 << 20
"""Bytes a member read of a URL archive asks for beyond what it needs (about 2 requests each)."""
URL_STREAM_BLOCK = 8 << 20
URL_STREAM_BLOCKS = 4
"""The indexing pass over a URL archive asks for blocks of ``URL_STREAM_BLOCK`` and keeps the
last ``URL_STREAM_BLOCKS``: the indexer steps back up to one seek point's span, and with a
single read-ahead block it fetched each byte 2.4 times, with these 1.02 times."""

_FORMAT = 1
_KINDS = ((".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".tar", "tar"), (".zip", "zip"))
_TAR_BLOCK = 512
_KNOWN: dict[str, bytes] = {}
"""Saved indexes this process holds in memory, by file name: shipped to a worker, or unsaved."""

logger = logging.getLogger(__name__)


def archive_kind(path: str | os.PathLike) -> str | None:
    """``"tar"``, ``"tar.gz"`` or ``"zip"`` from a file name's ending (any case), else None.

    Examples
    --------
    >>> [archive_kind(p) for p in ("a/images_001.tar.gz", "x.TGZ", "k.zip", "b.tar", "c.png")]
    ['tar.gz', 'tar.gz', 'zip', 'tar', None]
    """
    name = os.fspath(path).lower()
    return next((kind for suffix, kind in _KINDS if name.endswith(suffix)), None)


@dataclass
class ArchiveIndex:
    """What is known of one archive: its members and, for a cut archive, where it ends.

    ``members`` maps a member's name to ``[data offset, size]`` in the
    (decompressed) tar, or to ``[-1, 0, reason]`` for a link that cannot be
    followed; for a zip it holds the names only (offset -1). ``size``,
    ``mtime_ns`` and ``etag`` say which version of the archive it describes
    (a file's modification time, or a URL object's ETag with ``mtime_ns`` 0).
    """

    size: int
    mtime_ns: int
    members: dict[str, list]
    end: int
    cut: str = ""
    crc_unchecked: bool = False
    gzip_index: bytes = field(default=b"", repr=False)
    etag: str = ""

    @property
    def identity(self) -> tuple[int, int, str]:
        """``(size, mtime_ns, etag)``: the version of the archive this index describes."""
        return self.size, self.mtime_ns, self.etag


def _identity(archive: str) -> tuple[int, int, str]:
    """``(size, mtime_ns, etag)`` of the archive now: a file's, or a URL object's."""
    if is_url(archive):
        try:
            size, etag = url_identity(archive)
        except UnreachableError:
            raise  # not the archive's fault: a reader keeps its batch pending
        except UrlError as error:
            raise ArchiveError(str(error)) from None
        return size, 0, etag
    try:
        stat = os.stat(archive)
    except OSError as error:
        raise ArchiveError(f"cannot read archive {archive!r}: {error.strerror or error}") from None
    return stat.st_size, stat.st_mtime_ns, ""


def _cache_folder() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xray-scale" / "indexes"


def index_location(
    archive: str | os.PathLike, identity: tuple[int, int, str] | None = None
) -> Path:
    """Where the index of ``archive`` is kept: beside it if its folder is writable, else cached.

    The cached name holds a digest of the archive's real path (or URL),
    size and modification time (or ETag), so two archives of one name, or
    an archive replaced by another, never share an index. An archive at a
    URL is always cached (see the module's notes).
    """
    text = os.fspath(archive)
    if not is_url(text) and os.access(Path(text).parent, os.W_OK):
        return Path(text + INDEX_SUFFIX)
    size, mtime_ns, etag = identity or _identity(text)
    where = text if is_url(text) else os.path.realpath(text)
    digest = hashlib.sha256(f"{where}\0{size}\0{mtime_ns}\0{etag}".encode()).hexdigest()[:16]
    name = text.rstrip("/").rsplit("/", 1)[-1]
    return _cache_folder() / f"{name}-{digest}{INDEX_SUFFIX}"


def _serialise(index: ArchiveIndex) -> bytes:
    header = {
        "format": _FORMAT,
        "size": index.size,
        "mtime_ns": index.mtime_ns,
        "etag": index.etag,
        "end": index.end,
        "cut": index.cut,
        "crc_unchecked": index.crc_unchecked,
        "suffixes": list(image_suffixes()),
        "members": index.members,
    }
    return json.dumps(header).encode() + b"\n" + index.gzip_index


def _parse(data: bytes, identity: tuple[int, int, str]) -> ArchiveIndex | None:
    """The index ``data`` holds if it describes this version of the archive, else None."""
    line, _, gzip_index = data.partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        return None
    found = (header.get("size"), header.get("mtime_ns"), header.get("etag", ""))
    if header.get("format") != _FORMAT or found != identity:
        return None
    if header.get("suffixes", [".png"]) != list(image_suffixes()):
        return None  # listed for other input formats than are registered now: list again
    return ArchiveIndex(
        identity[0],
        identity[1],
        header["members"],
        header["end"],
        header["cut"],
        header["crc_unchecked"],
        gzip_index,
        identity[2],
    )


def _save(index: ArchiveIndex, location: Path) -> None:
    """Write ``index`` to ``location`` atomically (a temporary file renamed), else keep it here."""
    data = _serialise(index)
    try:
        location.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=location.parent, prefix=location.name, suffix=".tmp", delete=False
        ) as file:
            file.write(data)
        os.replace(file.name, location)
    except OSError as error:  # a read-only cache: index again next time
        logger.warning("cannot save the archive index %s (%s)", location, error.strerror or error)
        _KNOWN[location.name] = data  # for this process, and the workers it ships indexes to


def _saved(location: Path) -> bytes | None:
    """The saved index named like ``location``: shipped to this process, or on disk."""
    if location.name in _KNOWN:
        return _KNOWN[location.name]
    try:
        return location.read_bytes()
    except OSError:
        return None


def install_indexes(indexes: dict[str, bytes]) -> None:
    """Keep ``indexes`` (from :func:`portable_indexes`) in this process: a worker's copy.

    A worker that shares no disk with the driver reads URL archives by their
    shipped index instead of reading each archive whole to build its own.
    """
    _KNOWN.update(indexes)


def portable_indexes(archives: list[str]) -> dict[str, bytes]:
    """The saved indexes of the ``.tar`` and ``.tar.gz`` archives at URLs among ``archives``.

    Each is built first if it was not yet. Local archives and zips (whose
    directory is their index) are left out: a worker reads those itself.

    Returns
    -------
    dict
        ``{index file name: saved index}``, for :func:`install_indexes`.
    """
    found = {}
    for archive in sorted(set(archives)):
        kind = archive_kind(archive)
        if not is_url(archive) or kind not in ("tar", "tar.gz"):
            continue
        index = load_index(archive, kind)
        location = index_location(archive, index.identity)
        found[location.name] = _saved(location) or _serialise(index)
    return found


def open_gzip(archive: str, gzip_index: bytes = b"", *, check_crc: bool = True, scan: bool = False):
    """An indexed_gzip reader of a ``.tar.gz`` file or URL.

    ``scan`` for the indexing pass: indexed_gzip's buffered file, since
    ``tarfile`` reads headers a few bytes at a time. Otherwise the unbuffered
    reader under it (``_IndexedGzipFile``), for member reads by ``pread``: the
    buffered one decompressed each member's span twice (its seek, then its
    read), 4.5 MB per member where 2.7 MB were needed, at twice the time.
    """
    from indexed_gzip import IndexedGzipFile
    from indexed_gzip.indexed_gzip import _IndexedGzipFile

    source = {}
    if is_url(archive) and scan:
        source = {
            "fileobj": open_url(archive, block_size=URL_STREAM_BLOCK, blocks=URL_STREAM_BLOCKS)
        }
    elif is_url(archive):
        source = {"fileobj": open_url(archive, block_size=URL_READ_AHEAD)}
    options = {
        "spacing": GZIP_SPACING,
        "auto_build": True,
        "skip_crc_check": not check_crc,
        "drop_handles": False,  # one file descriptor per handle, not an open() per read
        **source,
    }
    if scan:
        stream = IndexedGzipFile(None if source else archive, buffer_size=GZIP_BUFFER, **options)
    else:
        stream = _IndexedGzipFile(None if source else archive, **options)
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


def _index_tar(archive: str, kind: str, stream, identity: tuple) -> ArchiveIndex:
    """Read every tar header of ``stream`` once; a cut or corrupt stream keeps what came before."""
    members: dict[str, list] = {}
    links: dict[str, str] = {}
    cut = ""
    reached = 0  # where the data read without error ends
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                reached = tar.offset
                if not is_image_name(member.name):
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
                f"cannot read {_shown(archive)} as a {kind} archive ({error}); "
                "check that the file is complete and is the archive its name says"
            ) from None
        cut = f"it is cut short or corrupt ({error})"
    _resolve_links(links, members)
    try:
        end = stream.seek(0, os.SEEK_END)
    except OSError:  # a gzip stream whose end fails its check: trust what was read
        end = reached
    size, mtime_ns, etag = identity
    return ArchiveIndex(size, mtime_ns, members, end, cut, etag=etag)


def _shown(archive: str) -> str:
    """An archive as messages name it: a path quoted, a URL without credentials."""
    return redact(archive) if is_url(archive) else repr(archive)


def _build(archive: str, kind: str, identity: tuple) -> ArchiveIndex:
    if kind == "zip":
        with open_zip(archive) as handle:
            names = [i.filename for i in handle.infolist() if is_image_name(i.filename)]
        return ArchiveIndex(identity[0], identity[1], {n: [-1, 0] for n in names}, 0)
    if kind == "tar":
        if is_url(archive):
            with open_url(archive, block_size=URL_STREAM_BLOCK, blocks=URL_STREAM_BLOCKS) as stream:
                return _index_tar(archive, kind, stream, identity)
        with open(archive, "rb") as stream:
            return _index_tar(archive, kind, stream, identity)
    try:
        index = _index_gzip(archive, identity, check_crc=True)
    except ArchiveError:  # nothing read: not gzip, or a small archive whose CRC-32 is wrong
        index = None
    if index is None or index.cut:  # cut short, or is only the gzip CRC-32 wrong?
        try:
            unchecked = _index_gzip(archive, identity, check_crc=False)
        except ArchiveError:
            if index is None:
                raise
            return index
        if index is None or not unchecked.cut:  # keep every member the data holds
            index = unchecked
            index.crc_unchecked = True
            index.cut = unchecked.cut or "its data does not match the gzip CRC-32 at its end"
    return index


def _index_gzip(archive: str, identity: tuple, *, check_crc: bool) -> ArchiveIndex:
    """The index of a ``.tar.gz``: its tar's member table and the gzip seek points."""
    try:
        stream = open_gzip(archive, check_crc=check_crc, scan=True)
    except OSError as error:
        raise ArchiveError(f"cannot open {_shown(archive)} as gzip ({error})") from None
    with stream:
        index = _index_tar(archive, "tar.gz", stream, identity)
        exported = io.BytesIO()
        stream.export_index(fileobj=exported)
    index.gzip_index = exported.getvalue()
    return index


def open_zip(archive: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise ArchiveError(
            f"cannot read {archive!r} as a zip archive ({error}); a zip cut short has lost "
            "its table of contents: download it again"
        ) from None


def load_index(archive: str, kind: str) -> ArchiveIndex:
    """The index of ``archive`` (a path or URL): the saved one if it fits, else built and saved.

    Raises
    ------
    ArchiveError
        If the archive cannot be read (missing, denied) or is not the
        archive its name says.
    UnreachableError
        If the archive is at a URL whose server cannot be reached.
    """
    if kind == "zip" and is_url(archive):
        raise ArchiveError(
            f"a zip at a URL is read through fsspec's chained URL: give {_shown(archive)} "
            "itself as the input, or name a member as zip://MEMBER::URL"
        )
    identity = _identity(archive)
    if kind == "zip":  # the central directory is the index
        return _build(archive, kind, identity)
    location = index_location(archive, identity)
    saved = _saved(location)
    index = None if saved is None else _parse(saved, identity)
    if index is None:
        logger.info("indexing %s (once; saved to %s)", _shown(archive), location)
        index = _build(archive, kind, identity)
        _save(index, location)
    return index
