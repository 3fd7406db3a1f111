"""What rendering reads from a store besides its maps: the run's format, index values, names."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import zarr

from ..config import Config, load_config
from ..engines.registry import resolve_engine
from ..errors import EngineError
from ..io.sources.archives import file_name
from ..store.access import open_store
from ..store.encoding import read_index
from ..store.metadata import RunMetadata

__all__ = [
    "RunFormat",
    "as_group",
    "describe_image",
    "image_name",
    "index_strings",
    "index_value",
    "run_format",
    "stem",
    "threshold_text",
]


@dataclass(frozen=True)
class RunFormat:
    """What re-decoding and recomputing need from the store's run.

    Attributes
    ----------
    shape, pixel_dtype
        The run's image format.
    config : Config
        The run's configuration.
    compat : str or None
        The run's compat mode.
    engine : str
        The run's engine where it can run here, else ``"scipy"`` (the
        reference, which every engine matches within 1e-4 of a map's range).
    """

    shape: tuple[int, int]
    pixel_dtype: str
    config: Config
    compat: str | None
    engine: str = "scipy"


def as_group(store: zarr.Group | str | os.PathLike) -> zarr.Group:
    """``store`` itself if it is an open group, else the store at that path."""
    return store if isinstance(store, zarr.Group) else open_store(store)


def _engine_here(engine: str) -> str:
    try:
        return resolve_engine(engine)
    except EngineError:  # a GPU run rendered where there is no GPU
        return "scipy"


def run_format(group: zarr.Group) -> RunFormat:
    """The :class:`RunFormat` of an open store."""
    stored = RunMetadata.from_group(group)
    return RunFormat(
        shape=stored.shape,
        pixel_dtype=str(stored.pixel_dtype),
        config=load_config(stored.config),
        compat=stored.compat,
        engine=_engine_here(stored.engine),
    )


def index_value(group: zarr.Group, name: str, index: int):
    """``index/<name>[index]`` as a Python value."""
    value = read_index(group, name, int(index))
    return value.item() if isinstance(value, np.generic | np.ndarray) else value


def index_strings(group: zarr.Group, name: str) -> np.ndarray:
    """A whole ``index/<name>`` string array, as Python strings (object dtype)."""
    return read_index(group, name).astype(object)


def stem(path: str) -> str:
    """The file name without a ``.png`` suffix: how images are named on the command line."""
    name = file_name(str(path))
    return name[:-4] if name.lower().endswith(".png") else name


def image_name(group: zarr.Group, index: int) -> str:
    """The name of image ``index`` (``00000011_001``)."""
    return stem(index_value(group, "path", index))


def describe_image(group: zarr.Group, index: int) -> str:
    """``00000011_001 (patient 11, follow-up 1)``, or just the name."""
    patient = str(index_value(group, "patient_id", index))
    follow_up = int(index_value(group, "follow_up", index))
    name = image_name(group, index)
    return f"{name} (patient {patient}, follow-up {follow_up})" if patient else name


def threshold_text(config: Config) -> str:
    """The mask threshold as panel titles show it (``150``)."""
    return f"{config.threshold:g}"
