"""Every error xray_scale raises on purpose, under one root: :class:`XrayScaleError`.

``except XrayScaleError`` catches anything the tool refuses or reports. Each
error also derives from the builtin it derived from before it had a root
(``ValueError``, ``RuntimeError``, ``Exception``), so callers that catch
those keep working. The message of each is one line a user reads: what was
wrong and what to do.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "ConfigError",
    "DecodeError",
    "EngineError",
    "InputError",
    "MemberError",
    "SelectionError",
    "StoreError",
    "StoreUnreachableError",
    "UnreachableError",
    "UrlError",
    "XrayScaleError",
]


class XrayScaleError(Exception):
    """The root of every error of this package."""


class ConfigError(XrayScaleError, ValueError):
    """The configuration is invalid; the message names the key and the allowed values."""


class InputError(XrayScaleError, ValueError):
    """An input argument names nothing usable; the message says what to do."""


class ArchiveError(InputError):
    """An archive input cannot be used at all; the message names it and says what to do."""


class MemberError(XrayScaleError):
    """One member of an archive cannot be read; the message is one line, without its name."""


class DecodeError(XrayScaleError):
    """One image cannot be used; the message is what ends up in ``index/error``."""


class EngineError(XrayScaleError, ValueError):
    """The engine is unknown or cannot run here; the message says what to install."""


class StoreError(XrayScaleError, RuntimeError):
    """The store cannot be created, opened or written; the message says why."""


class SelectionError(XrayScaleError, ValueError):
    """The images asked for are not in the store; the message says which."""


class UrlError(XrayScaleError, OSError):
    """A URL cannot be read; the message names it, without credentials, and says why."""


class UnreachableError(UrlError, ConnectionError):
    """A URL's server cannot be reached: not the image's fault, so its batch stays pending."""


class StoreUnreachableError(UnreachableError):
    """A URL store's server cannot be reached during a run: nothing more can be written."""
