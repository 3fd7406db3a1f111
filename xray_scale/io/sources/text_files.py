"""The bytes of a manifest, metadata file or name list: a file, an archive's member, or a URL.

Datasets ship their metadata where their images are: Kaggle's zip of ChestX-ray8
holds ``Data_Entry_2017.csv`` beside ``images_001/``, and CheXpert's zip holds
``train.csv`` and ``valid.csv``, and Kaggle's NIH's ``test_list.txt``. ``--manifest``
and the inputs take such a member by the name images get, ``ARCHIVE::MEMBER``
(``archive.zip::Data_Entry_2017.csv``, ``archive.zip::test_list.txt``), so nothing
needs extracting. A local zip's member is read from the zip's directory; a local
tar's by reading the archive up to it (one pass over a ``.tar.gz``); a zip at a URL
through fsspec's ``zip://MEMBER::URL``, by range requests. A tar at a URL is not
read in place for one small file: the message says to copy it out.

Unlike an image, a file here that cannot be read stops the run before it starts
(:class:`~xray_scale.errors.InputError`, exit 2), naming the file and why.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

from ...errors import InputError
from .archives import archive_kind, split_member_path
from .urls import is_url, read_url_input, redact

__all__ = ["read_text_file"]


def read_text_file(path: str | os.PathLike, what: str) -> bytes:
    """The bytes of a manifest, metadata file or name list, wherever it is.

    Parameters
    ----------
    path : path-like or str
        A file, an ``ARCHIVE::MEMBER`` name (a local ``.zip``, ``.tar``,
        ``.tar.gz``, or a ``.zip`` at a URL), or a URL.
    what : str
        What the file is, for the message (``"manifest"``, ``"metadata"``, ``"list"``).

    Raises
    ------
    InputError
        Naming the file (a URL without its credentials) and why it cannot be read.
    """
    text = os.fspath(path)
    parts = split_member_path(text)
    if parts is not None and not os.path.exists(text):
        return _member_bytes(*parts, what=what)
    if is_url(text):
        return read_url_input(text, what)
    try:
        return Path(text).read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {what} {text!r}: {error.strerror or error}") from None


def _member_bytes(archive: str, member: str, *, what: str) -> bytes:
    """One member of an archive, or InputError saying why not."""
    shown = f"{redact(archive)}::{member}"
    kind = archive_kind(archive)
    if is_url(archive):
        if kind != "zip":
            raise InputError(
                f"cannot read {what} {shown!r}: a member of a tar at a URL is not read in place "
                "(that would read the whole archive); copy it out and give its URL or path"
            )
        return read_url_input(f"zip://{member}::{archive}", what)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as opened:
                return opened.read(member)
        with tarfile.open(archive, "r:*") as opened:
            found = next((info for info in opened if info.name == member), None)
            if found is None or not found.isfile():
                raise KeyError(member)
            return opened.extractfile(found).read()
    except KeyError:
        raise InputError(f"cannot read {what} {shown!r}: the archive has no such file") from None
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as error:
        reason = getattr(error, "strerror", None) or error
        raise InputError(f"cannot read {what} {shown!r}: {reason}") from None
