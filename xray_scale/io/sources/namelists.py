"""Name lists: a ``.txt`` of bare image names (NIH's ``test_list.txt``) selects images by name.

NIH ships the official split beside its archives as ``train_val_list.txt``
and ``test_list.txt``: one image name a line (``00000003_000.png``), no
folder. A ``.txt`` input has meant a list of paths (relative ones taken from
the list's folder); both kinds are told apart by one rule:

    A ``.txt`` is a **name list** when every entry (blank lines and ``#``
    comments aside) is a bare file name, without ``/`` or ``::``, and none of
    them is a file beside the list. Otherwise it is a **path list**, as before.

So ``ls *.png > list.txt`` inside a folder of images stays a path list (its
names are files beside it), while ``test_list.txt`` beside the archives is a
name list. A name list adds no image of its own: it keeps, from all the other
inputs (folders, globs, archives, path lists), the images whose file name it
lists, matched by file name as ``--manifest`` matches them. A listed name that
is in no input is not dropped: the run records it as failed, "not in the
inputs", with ``LIST::NAME`` as its ``index/path`` (the list it came from and
the name). Several name lists select the union of their names.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import InputError
from .archives import file_name

__all__ = [
    "NOT_IN_INPUTS",
    "absent_path",
    "is_absent",
    "names_in",
    "read_name_list",
    "select_by_names",
]

NOT_IN_INPUTS = "not in the inputs"
"""The reason recorded for a listed name that no input holds."""

_SEPARATORS = ("/", "\\", "::")
_LIST_SUFFIX = ".txt"


def absent_path(name_list: str, name: str) -> str:
    """The ``index/path`` of a listed name no input holds: ``LIST::NAME``.

    Examples
    --------
    >>> absent_path("/data/nih/test_list.txt", "00000003_000.png")
    '/data/nih/test_list.txt::00000003_000.png'
    >>> is_absent(_), is_absent("/data/images_001.tar.gz::images/00000003_000.png")
    (True, False)
    """
    return f"{name_list}::{name}"


def is_absent(path: str) -> bool:
    """Whether ``path`` is :func:`absent_path`'s ``LIST::NAME`` (a ``.txt`` list, a bare name)."""
    name_list, separator, name = path.rpartition("::")
    return bool(separator) and name_list.lower().endswith(_LIST_SUFFIX) and _is_bare_name(name)


def _entries(text: str) -> list[str]:
    """The entries of a list file: stripped lines, blank lines and ``#`` comments skipped."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _is_bare_name(entry: str) -> bool:
    return not any(s in entry for s in _SEPARATORS)


def names_in(text: str) -> list[str] | None:
    """The names of a list's text when every entry is a bare name, without repeats; else None.

    Examples
    --------
    >>> names_in("00000003_000.png\\n\\n00000003_001.png\\n00000003_000.png\\n")
    ['00000003_000.png', '00000003_001.png']
    >>> names_in("images/00000003_000.png\\n") is None
    True
    """
    entries = _entries(text)
    if not entries or not all(_is_bare_name(entry) for entry in entries):
        return None
    return list(dict.fromkeys(entries))


def read_name_list(path: str | os.PathLike) -> list[str] | None:
    """The names of a name list, or None if ``path`` is a path list.

    Parameters
    ----------
    path : str or path-like
        A ``.txt`` input.

    Returns
    -------
    list of str or None
        The listed names in file order without repeats, when every entry is a
        bare name and none is a file beside the list; None otherwise (a path
        list, read as before).

    Raises
    ------
    InputError
        If the file cannot be read or is not UTF-8.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     names = Path(folder, "test_list.txt")
    ...     _ = names.write_text("00000003_000.png\\n# a comment\\n00000003_001.png\\n")
    ...     paths = Path(folder, "paths.txt")
    ...     _ = paths.write_text("images/00000003_000.png\\n")
    ...     read_name_list(names), read_name_list(paths)
    (['00000003_000.png', '00000003_001.png'], None)
    """
    path = Path(path)
    try:
        names = names_in(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read list {str(path)!r}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputError(f"list {str(path)!r} is not UTF-8 text; save it as UTF-8") from None
    if names is None or any((path.parent / name).exists() for name in names):
        return None
    return names


def select_by_names(paths: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """Keep the inputs whose file name is listed; name the listed names no input holds.

    Parameters
    ----------
    paths : list of str
        The inputs found (files and ``ARCHIVE::MEMBER`` names), sorted.
    names : list of str
        Bare image names, from one or more name lists.

    Returns
    -------
    selected : list of str
        The inputs whose file name is in ``names``, in the order of ``paths``.
    missing : list of str
        The names no input holds, in the order of ``names``; the run records
        each as failed, :data:`NOT_IN_INPUTS`.

    Raises
    ------
    InputError
        If two selected inputs have the same file name: which one is meant
        cannot be told.

    Examples
    --------
    >>> select_by_names(
    ...     ["/a.tar.gz::images/1_000.png", "/a.tar.gz::images/1_001.png", "/b/2_000.png"],
    ...     ["2_000.png", "1_000.png", "9_000.png"],
    ... )
    (['/a.tar.gz::images/1_000.png', '/b/2_000.png'], ['9_000.png'])
    """
    wanted = set(names)
    chosen: dict[str, str] = {}
    for path in paths:
        name = file_name(path)
        if name in wanted:
            if name in chosen:
                raise InputError(
                    f"{name} is in the inputs twice: {chosen[name]} and {path}; a name list "
                    "selects by file name, so give only one of them"
                )
            chosen[name] = path
    selected = [path for path in paths if chosen.get(file_name(path)) == path]
    return selected, [name for name in dict.fromkeys(names) if name not in chosen]
