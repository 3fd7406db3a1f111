"""What a file that no registered format claims holds: the one message for "not an image".

Used by :func:`xray_scale.io.formats.registry.identify` for every input, and by a
format's own header reader when it is handed bytes directly (the GPU path's chunk
walk), so that both say the same.
"""

from __future__ import annotations

__all__ = ["describe_foreign"]

_FOREIGN = (b"GIF8", b"II*\x00", b"MM\x00*", b"BM")
"""Signatures of GIF, TIFF (both byte orders) and BMP."""


def describe_foreign(start: bytes, *, expected: str, signature: str) -> str:
    """One line saying that ``start`` is not what was expected, and what it is when known.

    Parameters
    ----------
    start : bytes
        The file's leading bytes (not empty).
    expected : str
        What it should have been (``"PNG"``, ``"PNG or RAWG"``).
    signature : str
        What it should have started with (``"the PNG signature"``).

    Examples
    --------
    >>> describe_foreign(b"\\xff\\xd8\\xff\\xe0", expected="PNG", signature="the PNG signature")
    'not a PNG: the file holds JPEG data (starts with FF D8 FF)'
    >>> describe_foreign(b"hello", expected="PNG", signature="the PNG signature")
    "not a PNG: the file starts with b'hello', not the PNG signature"
    """
    if start.startswith(b"\xff\xd8\xff"):
        return f"not a {expected}: the file holds JPEG data (starts with FF D8 FF)"
    if start.startswith(_FOREIGN):
        return f"not a {expected}: the file holds another image format (starts with {start[:4]!r})"
    return f"not a {expected}: the file starts with {start[:8]!r}, not {signature}"
