"""Find the input PNGs: directories, globs, archives and ``.txt`` lists, in a stable order.

An archive (``.tar``, ``.tar.gz``, ``.tgz``, ``.zip``; named, matched by a glob
or listed; a file or an object at a URL) stands for its ``*.png`` members,
named ``ARCHIVE::MEMBER`` (:mod:`xray_scale.io.sources.archives`; a zip at a URL by
fsspec's chained URL instead); such a name is an input too. A ``.txt`` of
bare image names is a name list (:mod:`xray_scale.io.sources.namelists`): it selects,
from the other inputs, the images it names.

Also parses ChestX-ray8's ``NNNNNNNN_NNN.png`` names into patient id and
follow-up number, and expands the on-the-fly phantom source ``synth:COUNT``
(or ``synth:COUNTxSIZE``) into virtual paths such as
``synth:1024/90000001_003.png``, which :mod:`xray_scale.io.decode` renders with
:func:`xray_scale.io.phantoms.phantom` instead of reading a file: a dataset-sized run
without the dataset.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import re
from pathlib import Path

from ...errors import InputError
from ..formats.registry import format_names, is_image_name, suffix_patterns
from .archives import (
    archive_kind,
    file_name,
    is_archive,
    list_members,
    member_exists,
    split_member_path,
)
from .namelists import absent_path, names_in, read_name_list, select_by_names
from .text_files import read_text_file
from .urls import is_url, list_url_inputs, read_url_input, redact

__all__ = [
    "SYNTHETIC_PREFIX",
    "InputError",
    "discover_inputs",
    "expand_synthetic",
    "parse_image_name",
    "parse_synthetic",
]

SYNTHETIC_PREFIX = "synth:"
SYNTHETIC_FIRST_PATIENT = 90000001
SYNTHETIC_FOLLOW_UPS = 9
_NAME = re.compile(r"^(\d{8})_(\d{3})\.[^.]+$")
_SYNTHETIC_SPEC = re.compile(r"^synth:(\d+)(?:x(\d+))?$")
_SYNTHETIC_PATH = re.compile(r"^synth:(\d+)/(\d{8})_(\d{3})\.png$")
_GLOB_CHARS = set("*?[")

logger = logging.getLogger(__name__)


def parse_image_name(path: str | os.PathLike) -> tuple[str, int]:
    """Patient id and follow-up number from a ChestX-ray8 file name.

    Parameters
    ----------
    path : str or path-like
        A file path; only its name is used.

    Returns
    -------
    patient_id : str
        The 8-digit id with leading zeros removed (``"11"``), or ``""`` when
        the name is not ``NNNNNNNN_NNN`` and a registered format's suffix
        (``NNNNNNNN_NNN.png``).
    follow_up : int
        The follow-up number, or -1 when the name does not match.

    Examples
    --------
    >>> parse_image_name("images/00000011_003.png")
    ('11', 3)
    >>> parse_image_name("scan.png")
    ('', -1)
    """
    name = file_name(os.fspath(path))
    match = _NAME.match(name)
    if match is None or not is_image_name(name):
        return "", -1
    return str(int(match.group(1))), int(match.group(2))


def expand_synthetic(spec: str) -> list[str]:
    """Virtual paths of the phantom source ``synth:COUNT`` or ``synth:COUNTxSIZE``.

    Image ``i`` is follow-up ``i % 9`` of patient ``90000001 + i // 9``; SIZE
    (default 1024) is the width and height.

    Examples
    --------
    >>> expand_synthetic("synth:3x256")
    ['synth:256/90000001_000.png', 'synth:256/90000001_001.png', 'synth:256/90000001_002.png']
    """
    match = _SYNTHETIC_SPEC.match(spec)
    if match is None:
        raise InputError(f"bad phantom source {spec!r}; write synth:COUNT or synth:COUNTxSIZE")
    count, size = int(match.group(1)), int(match.group(2) or 1024)
    if count < 1 or size < 32:
        raise InputError(f"{spec!r}: COUNT must be >= 1 and SIZE >= 32")
    return [
        f"{SYNTHETIC_PREFIX}{size}/{SYNTHETIC_FIRST_PATIENT + i // SYNTHETIC_FOLLOW_UPS:08d}"
        f"_{i % SYNTHETIC_FOLLOW_UPS:03d}.png"
        for i in range(count)
    ]


def parse_synthetic(path: str) -> tuple[int, int, int] | None:
    """``(size, patient_id, follow_up)`` of a virtual phantom path, else None.

    Examples
    --------
    >>> parse_synthetic("synth:256/90000002_004.png")
    (256, 90000002, 4)
    >>> parse_synthetic("/data/00000011_000.png") is None
    True
    """
    match = _SYNTHETIC_PATH.match(path)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


_LOST_AND_FOUND = "lost+found"
"""A file system's own folder at the top of a volume, never part of a dataset."""


def _list_folder(folder: str) -> list[tuple[str, bool]]:
    """``(name, is a folder)`` of each entry of ``folder``, sorted by name."""
    try:
        with os.scandir(folder) as entries:
            return sorted((entry.name, _is_folder(entry)) for entry in entries)
    except OSError as error:
        raise InputError(
            f"cannot read folder {folder!r} ({error.strerror or error}), so its images would be "
            "left out; fix its permissions, or pass only the readable folders, or a .txt list "
            "of the images, instead"
        ) from error


def _is_folder(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a folder (through a link too); a broken or looping link is not.

    Raises
    ------
    InputError
        For a link to somewhere that cannot be reached (permission denied):
        it may be a folder of images.
    """
    try:
        return entry.is_dir()
    except PermissionError as error:
        raise InputError(
            f"cannot tell what {entry.path!r} links to ({error.strerror}), so images behind it "
            "would be left out; fix the permissions, or remove the link"
        ) from error
    except OSError:  # a link to itself, in a loop, or to nothing
        return False


def _glob_pngs(pattern: str) -> list[str]:
    """The PNGs ``glob.glob(pattern, recursive=True)`` matches, ``**`` through a safe walk.

    ``glob`` follows symlinked folders into loops (one link to a parent gave 41
    copies of an image, two ran without end); a ``**`` pattern is matched here
    against the walk of :func:`_walk_pngs`, which reads each real folder once.
    """
    if "**" not in pattern:
        return [found for p in glob.glob(pattern) for found in _png_or_members(p)]
    parts = Path(pattern).parts
    first = next(k for k, part in enumerate(parts) if _GLOB_CHARS & set(part))
    base = Path(*parts[:first]) if first else Path(".")
    if not base.is_dir():
        return []
    return [
        path
        for path in _walk_pngs(base)
        if _matches(parts[first:], Path(path).relative_to(base).parts)
    ]


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether path ``parts`` match glob ``pattern`` parts, ``**`` standing for any number."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(pattern[1:], parts[k:]) for k in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _matches(pattern[1:], parts[1:])
    )


def _walk_pngs(directory: Path) -> list[str]:
    """PNG paths under ``directory``, following symlinked folders, each real folder once.

    A folder reached again (a link to an ancestor, or two links to one folder)
    is skipped, so cycles end and no image is listed twice. ``lost+found`` (a
    file system's own folder, readable by root only) is not searched.
    """
    found: list[str] = []
    visited: set[str] = set()
    pending = [os.fspath(directory)]
    while pending:
        folder = pending.pop()
        real = os.path.realpath(folder)
        if real in visited:
            continue
        visited.add(real)
        subfolders = []
        for name, is_folder in _list_folder(folder):
            path = os.path.join(folder, name)
            # A directory named "x.png" is listed too: it fails later with a clear
            # per-image error instead of vanishing from the run.
            if is_image_name(name):
                found.append(path)
            if is_folder and name != _LOST_AND_FOUND:
                subfolders.append(path)
        pending.extend(reversed(subfolders))  # depth first, in name order
    return found


def _png_or_members(path: str) -> list[str]:
    """A glob's match: ``[path]`` for a PNG, an archive's members, nothing for other files."""
    if is_image_name(path):
        return [path]
    if is_archive(path) and os.path.isfile(path):
        return list_members(path)
    return []


def _read_list(list_file: Path) -> list[str]:
    """The paths a path list holds, a listed archive standing for its members."""
    base = list_file.parent
    paths = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            path = Path(entry)
            if parse_synthetic(entry) is None and not is_url(entry) and not path.is_absolute():
                entry = str(base / path)
            if is_archive(entry) and os.path.isfile(entry):
                paths.extend(list_members(entry))
            else:
                paths.append(entry)
    return paths


def _read_url_list(url: str) -> tuple[list[str] | None, list[str]]:
    """A ``.txt`` at a URL: ``(names, [])`` for a name list, ``(None, paths)`` for a path list.

    Relative paths are taken from the list's own folder in the bucket or site.
    A list at a URL whose lines are bare names is a name list (no request is
    made per name to see whether it is a file beside the list).
    """
    try:
        text = read_url_input(url, "list").decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"list {redact(url)} is not UTF-8 text; save it as UTF-8") from None
    names = names_in(text)
    if names is not None:
        return names, []
    folder = url.rsplit("/", 1)[0]
    paths = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            whole = is_url(entry) or os.path.isabs(entry) or parse_synthetic(entry) is not None
            paths.append(entry if whole else f"{folder}/{entry}")
    return None, paths


def _archived_name_list(text: str) -> list[str]:
    """The names of a name list inside an archive, ``ARCHIVE::LIST.txt`` (local or at a URL)."""
    try:
        names = names_in(read_text_file(text, "list").decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"list {redact(text)} is not UTF-8 text; save it as UTF-8") from None
    if names is None:
        raise InputError(
            f"list {redact(text)} is inside an archive, so it must list image names, one a line "
            "(as NIH's test_list.txt does), not paths; take it out of the archive to list paths"
        )
    return names


def _select_names(paths: set[str], name_lists: dict[str, list[str]]) -> set[str]:
    """The inputs the name lists name, and ``LIST::NAME`` for each name no input holds."""
    first = next(iter(name_lists))
    if not paths:
        raise InputError(
            f"name list {first!r} selects images from the other inputs, but none is given; "
            "add the folders, archives or globs that hold its images"
        )
    origin: dict[str, str] = {}
    for name_list, names in name_lists.items():
        for name in names:
            origin.setdefault(name, name_list)
    selected, missing = select_by_names(sorted(paths), list(origin))
    if missing:
        logger.warning(
            "%d listed image names are in no input (recorded as failed: not in the inputs); "
            "the first: %s from %s",
            len(missing),
            missing[0],
            origin[missing[0]],
        )
    return {*selected, *(absent_path(origin[name], name) for name in missing)}


def _url_archives(found: list[str]) -> list[str]:
    """URL inputs found by a glob or a list, each archive among them standing for its members.

    A zip member's chained URL (``zip://x.png::s3://bucket/k.zip``) ends as its
    zip does, but is a member already: kept as it is.
    """
    expanded = []
    for url in found:
        if "::" in url:
            expanded.append(url)
        elif archive_kind(url) == "zip":
            expanded.extend(list_url_inputs(url))
        elif is_archive(url) and is_url(url):
            expanded.extend(list_members(url))
        else:
            expanded.append(url)
    return expanded


def _member_input(text: str) -> list[str]:
    """An ``ARCHIVE::MEMBER`` input, checked: its archive exists and holds the member."""
    archive, member = split_member_path(text)
    if is_url(archive) and archive_kind(archive) == "zip":
        raise InputError(
            f"a member of a zip at a URL is named by fsspec's chained URL: write "
            f"zip://{member}::{redact(archive)}"
        )
    if is_url(archive) and not member_exists(text):
        raise InputError(f"archive {redact(archive)} does not hold member {member!r}")
    if not member_exists(text):
        where = "does not hold" if os.path.isfile(archive) else "does not exist, so it lacks"
        raise InputError(f"archive {archive!r} {where} member {member!r}")
    return [text]


def _absolute(path: str) -> str:
    """``path`` made absolute; a virtual phantom path or a URL is kept as it is."""
    return path if parse_synthetic(path) is not None or is_url(path) else os.path.abspath(path)


def discover_inputs(inputs: list[str | os.PathLike]) -> list[str]:
    """Expand input arguments into a sorted, de-duplicated list of PNG paths.

    Parameters
    ----------
    inputs : list of str or path-like
        Each one is a directory (searched recursively for ``*.png``, any
        case, through symlinked folders too; archives in it are not opened),
        a glob pattern (the PNGs and archives it matches; a ``**`` pattern
        matches PNGs only), an archive (``.tar``, ``.tar.gz``, ``.tgz``,
        ``.zip``: its ``*.png`` members at any depth), one member
        ``ARCHIVE::MEMBER``, a ``.txt`` file with one path per line (blank
        lines and ``#`` comments skipped, relative paths taken from the
        list's folder, a listed archive standing for its members, virtual
        phantom paths such as ``synth:64/90000001_000.png`` kept as they
        are), a ``.txt`` name list (:mod:`xray_scale.io.sources.namelists`: it keeps,
        of all the other inputs, the images it names), a single PNG file, or
        the phantom source ``synth:COUNT[xSIZE]``.

    Returns
    -------
    list of str
        Absolute paths and ``ARCHIVE::MEMBER`` names (virtual phantom paths
        as they are), sorted; the same inputs always give the same order.
        A path listed in a ``.txt`` file but absent on disk is kept, so that
        it is reported as a failed image rather than silently dropped; so is
        each name of a name list that no input holds, as ``LIST::NAME``.

    Raises
    ------
    InputError
        If an input does not exist or matches nothing, if a folder under a
        directory input cannot be read, if an archive cannot be read at all
        (:class:`~xray_scale.errors.ArchiveError`), if a name list is given
        without other inputs or a name it lists is in two inputs, or if all
        of them together give no PNG.
    """
    paths: set[str] = set()
    name_lists: dict[str, list[str]] = {}
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if text.startswith(SYNTHETIC_PREFIX):
            paths.update(expand_synthetic(text))
            continue
        member = split_member_path(text) is not None and not path.exists()
        if member and text.lower().endswith(".txt"):  # a name list in an archive (Kaggle's zip)
            name_lists[_absolute(text)] = _archived_name_list(text)
            continue
        if is_url(text) and text.lower().endswith(".txt"):
            names, found = _read_url_list(text)
            if names is not None:
                name_lists[text] = names
                continue
            if not found:
                raise InputError(f"list {redact(text)} holds no paths")
            found = _url_archives(found)
        elif is_url(text) and split_member_path(text) is not None:
            found = _member_input(text)
        elif is_url(text) and archive_kind(text) in ("tar", "tar.gz"):
            found = list_members(text)
            if not found:
                raise InputError(f"archive {redact(text)} holds no {suffix_patterns()} member")
        elif is_url(text):
            found = _url_archives(list_url_inputs(text))
        elif member:
            found = _member_input(text)
        elif path.is_dir() and not is_image_name(text):
            found = _walk_pngs(path)
            if not found:
                raise InputError(f"no {suffix_patterns()} files under directory {text!r}")
        elif path.is_file() and text.lower().endswith(".txt"):
            names = read_name_list(path)
            if names is not None:
                name_lists[os.path.abspath(text)] = names
                continue
            found = _read_list(path)
            if not found:
                raise InputError(f"list file {text!r} holds no paths")
        elif path.is_file() and is_archive(text):
            found = list_members(text)
            if not found:
                raise InputError(f"archive {text!r} holds no {suffix_patterns()} member")
        elif _GLOB_CHARS & set(text):
            found = _glob_pngs(text)
            if not found:
                raise InputError(
                    f"glob {text!r} matches no {suffix_patterns()} file or archive of them"
                )
        elif path.exists():
            found = [text]
        else:
            raise InputError(
                f"input {text!r} does not exist; give a directory, a glob such as "
                "'images/*.png', an archive (.tar, .tar.gz, .zip), a .txt file listing paths "
                f"or image names, or a {format_names()} file"
            )
        paths.update(_absolute(p) for p in found)
    if name_lists:
        paths = _select_names(paths, name_lists)
    if not paths:
        raise InputError(
            f"no input given: name a directory, glob or .txt list of {format_names()} files"
        )
    return sorted(paths)
