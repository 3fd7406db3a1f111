"""Where an image's bytes come from: a file, an archive member, or a URL, with one-line reasons.

Decoding (:mod:`xray_scale.io.decode`, and the GPU path's chunk reader) opens
every input through :func:`open_image`, so each kind of input is read in one
place and fails with the same kind of message.
"""

from __future__ import annotations

import io
import os

from ...errors import DecodeError, MemberError, UnreachableError, UrlError
from ..formats.registry import format_names
from .archives import read_member, split_member_path
from .namelists import NOT_IN_INPUTS, is_absent
from .urls import is_url, read_url

__all__ = ["FILE_NOT_FOUND", "open_image", "read_input"]

FILE_NOT_FOUND = "file not found"
"""The error of an image whose file does not exist (nothing was read: not processed)."""


def open_image(path: str | os.PathLike):
    """Open an input image for reading bytes, or raise DecodeError with a one-line reason.

    A file: missing, a directory, permission denied, or any other error of the
    system. An archive member (``ARCHIVE::MEMBER``): its bytes, read by random
    access, or the archive's reason. A name-list entry no input holds
    (``LIST::NAME``): "not in the inputs". A URL (``s3://``, ``https://``,
    a chained ``zip://...::s3://...``): its bytes, or why it cannot be read;
    a server that cannot be reached raises
    :class:`~xray_scale.errors.UnreachableError` instead, which stops the
    batch rather than failing the image.
    """
    text = os.fspath(path)
    if split_member_path(text) is not None and not os.path.exists(text):
        try:
            return io.BytesIO(read_member(text))
        except MemberError as error:
            raise DecodeError(str(error)) from None
    if is_absent(text):
        raise DecodeError(NOT_IN_INPUTS)
    if is_url(text):
        try:
            return io.BytesIO(read_url(text))
        except UnreachableError:
            raise  # not the image's fault: its batch stops and stays pending
        except UrlError as error:
            raise DecodeError(str(error)) from None
    try:
        return open(path, "rb")
    except IsADirectoryError:
        raise DecodeError(f"is a directory, not a {format_names()} file") from None
    except PermissionError:
        raise DecodeError("cannot read the file: permission denied") from None
    except FileNotFoundError:
        raise DecodeError(FILE_NOT_FOUND) from None
    except OSError as error:
        raise DecodeError(f"cannot read the file: {error.strerror or error}") from None


def read_input(path: str | os.PathLike) -> bytes:
    """An input's bytes, or DecodeError with the CPU decoder's message (missing, a folder...).

    A server that cannot be reached raises
    :class:`~xray_scale.errors.UnreachableError`, as for :func:`open_image`.
    """
    try:
        with open_image(path) as file:
            return file.read()
    except UnreachableError:
        raise  # a bucket or server down: the batch stays pending (as for the CPU decoder)
    except OSError as error:  # a read failing after open (I/O error, file vanished)
        raise DecodeError(f"cannot read the file: {error}") from None
