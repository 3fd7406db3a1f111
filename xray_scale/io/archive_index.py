"""The index of one archive, built once and saved: its PNG members and where each one starts.

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
4 MiB read-ahead (2.2 ms with the 256 KiB used here); rapidgzip indexed as fast
and read in 5.8-9.9 ms, but its reader aborted the process at exit after
reading a cut archive; ratarmountcore (which drives indexed_gzip with a 16 MiB
spacing and keeps its index in SQLite) read in 20-60 ms with 2-3x the memory.
The index is 8 MB per GB of archive.

The index file is ``ARCHIVE.xray-scale-index`` beside the archive when its
folder is writable, else in ``$XDG_CACHE_HOME/xray-scale/indexes/`` (default
``~/.cache``), named from the archive's real path, size and modification time.
It records the archive's size and modification time and is rebuilt when either
changed, so a resumed run reuses it and a replaced archive is indexed anew.

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

from ..errors import ArchiveError

__all__ = [
    "GZIP_BUFFER",
    "GZIP_SPACING",
    "INDEX_SUFFIX",
    "ArchiveIndex",
    "index_location",
    "is_png_name",
    "load_index",
    "open_gzip",
    "open_zip",
]

INDEX_SUFFIX = ".xray-scale-index"
"""Appended to an archive's file name to name its index file."""
GZIP_SPACING = 4 << 20
"""Uncompressed bytes between two gzip seek points: a read decompresses ~half of it extra."""
GZIP_BUFFER = 256 << 10
"""Read-ahead of a gzip handle; indexed_gzip's default (4 MiB) decompressed 4 MiB per member."""

_FORMAT = 1
_TAR_BLOCK = 512

logger = logging.getLogger(__name__)


def is_png_name(name: str) -> bool:
    """Whether a file or member name ends in ``.png``, any case."""
    return name.lower().endswith(".png")


@dataclass
class ArchiveIndex:
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


def _save(index: ArchiveIndex, location: Path) -> None:
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


def _load(location: Path, size: int, mtime_ns: int) -> ArchiveIndex | None:
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
    return ArchiveIndex(
        size,
        mtime_ns,
        header["members"],
        header["end"],
        header["cut"],
        header["crc_unchecked"],
        gzip_index,
    )


def open_gzip(archive: str, gzip_index: bytes = b"", *, check_crc: bool = True):
    import indexed_gzip

    stream = indexed_gzip.IndexedGzipFile(
        archive,
        spacing=GZIP_SPACING,
        buffer_size=GZIP_BUFFER,
        auto_build=True,
        skip_crc_check=not check_crc,
        drop_handles=False,  # one file descriptor per handle, not an open() per read
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


def _index_tar(archive: str, kind: str, stream) -> ArchiveIndex:
    """Read every tar header of ``stream`` once; a cut or corrupt stream keeps what came before."""
    members: dict[str, list] = {}
    links: dict[str, str] = {}
    cut = ""
    reached = 0  # where the data read without error ends
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                reached = tar.offset
                if not is_png_name(member.name):
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
                f"cannot read {archive!r} as a {kind} archive ({error}); "
                "check that the file is complete and is the archive its name says"
            ) from None
        cut = f"it is cut short or corrupt ({error})"
    _resolve_links(links, members)
    try:
        end = stream.seek(0, os.SEEK_END)
    except OSError:  # a gzip stream whose end fails its check: trust what was read
        end = reached
    stat = os.stat(archive)
    return ArchiveIndex(stat.st_size, stat.st_mtime_ns, members, end, cut)


def _build(archive: str, kind: str) -> ArchiveIndex:
    if kind == "zip":
        stat = os.stat(archive)
        with open_zip(archive) as handle:
            names = [i.filename for i in handle.infolist() if is_png_name(i.filename)]
        return ArchiveIndex(stat.st_size, stat.st_mtime_ns, {n: [-1, 0] for n in names}, 0)
    if kind == "tar":
        with open(archive, "rb") as stream:
            return _index_tar(archive, kind, stream)
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


def _index_gzip(archive: str, *, check_crc: bool) -> ArchiveIndex:
    """The index of a ``.tar.gz``: its tar's member table and the gzip seek points."""
    try:
        stream = open_gzip(archive, check_crc=check_crc)
    except OSError as error:
        raise ArchiveError(f"cannot open {archive!r} as gzip ({error})") from None
    with stream:
        index = _index_tar(archive, "tar.gz", stream)
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
