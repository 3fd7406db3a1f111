"""Find the input PNGs: directories, globs and ``.txt`` lists, in a stable order.

Also parses ChestX-ray8's ``NNNNNNNN_NNN.png`` names into patient id and
follow-up number, and expands the on-the-fly phantom source ``synth:COUNT``
(or ``synth:COUNTxSIZE``) into virtual paths such as
``synth:1024/90000001_003.png``, which :mod:`xray_scale.io.decode` renders with
:func:`xray_scale.io.synth.phantom` instead of reading a file: a dataset-sized run
without the dataset.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from pathlib import Path

from ..errors import InputError

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
_NAME = re.compile(r"^(\d{8})_(\d{3})\.png$", re.IGNORECASE)
_SYNTHETIC_SPEC = re.compile(r"^synth:(\d+)(?:x(\d+))?$")
_SYNTHETIC_PATH = re.compile(r"^synth:(\d+)/(\d{8})_(\d{3})\.png$")
_GLOB_CHARS = set("*?[")


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
        the name is not ``NNNNNNNN_NNN.png``.
    follow_up : int
        The follow-up number, or -1 when the name does not match.

    Examples
    --------
    >>> parse_image_name("images/00000011_003.png")
    ('11', 3)
    >>> parse_image_name("scan.png")
    ('', -1)
    """
    match = _NAME.match(Path(path).name)
    if match is None:
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


def _is_png_name(path: str) -> bool:
    return path.lower().endswith(".png")


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
            "of the PNGs, instead"
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
        return [p for p in glob.glob(pattern) if _is_png_name(p)]
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
            if _is_png_name(name):
                found.append(path)
            if is_folder and name != _LOST_AND_FOUND:
                subfolders.append(path)
        pending.extend(reversed(subfolders))  # depth first, in name order
    return found


def _read_list(list_file: Path) -> list[str]:
    base = list_file.parent
    paths = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            path = Path(entry)
            if parse_synthetic(entry) is not None or path.is_absolute():
                paths.append(entry)
            else:
                paths.append(str(base / path))
    return paths


def _absolute(path: str) -> str:
    """``path`` made absolute; a virtual phantom path is kept as it is."""
    return path if parse_synthetic(path) is not None else os.path.abspath(path)


def discover_inputs(inputs: list[str | os.PathLike]) -> list[str]:
    """Expand input arguments into a sorted, de-duplicated list of PNG paths.

    Parameters
    ----------
    inputs : list of str or path-like
        Each one is a directory (searched recursively for ``*.png``, any
        case, through symlinked folders too), a glob pattern, a ``.txt`` file
        with one path per line (blank lines and ``#`` comments skipped,
        relative paths taken from the list's folder, virtual phantom paths
        such as ``synth:64/90000001_000.png`` kept as they are), a single PNG
        file, or the phantom source ``synth:COUNT[xSIZE]``.

    Returns
    -------
    list of str
        Absolute paths (virtual phantom paths as they are), sorted; the same
        inputs always give the same order.
        A path listed in a ``.txt`` file but absent on disk is kept, so that
        it is reported as a failed image rather than silently dropped.

    Raises
    ------
    InputError
        If an input does not exist or matches nothing, if a folder under a
        directory input cannot be read, or if all of them together give no PNG.
    """
    paths: set[str] = set()
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if text.startswith(SYNTHETIC_PREFIX):
            paths.update(expand_synthetic(text))
            continue
        if path.is_dir() and not _is_png_name(text):
            found = _walk_pngs(path)
            if not found:
                raise InputError(f"no *.png files under directory {text!r}")
        elif path.is_file() and text.lower().endswith(".txt"):
            found = _read_list(path)
            if not found:
                raise InputError(f"list file {text!r} holds no paths")
        elif _GLOB_CHARS & set(text):
            found = _glob_pngs(text)
            if not found:
                raise InputError(f"glob {text!r} matches no *.png file")
        elif path.exists():
            found = [text]
        else:
            raise InputError(
                f"input {text!r} does not exist; give a directory, a glob such as "
                "'images/*.png', a .txt file listing paths, or a PNG file"
            )
        paths.update(_absolute(p) for p in found)
    if not paths:
        raise InputError("no input given: name a directory, glob or .txt list of PNGs")
    return sorted(paths)
