"""xray_scale: the NumPy X-ray tutorial's analysis over whole chest X-ray datasets.

The public API: :func:`run` processes PNG inputs into a zarr v3 store,
:func:`open_images` stacks PNGs lazily into a dask array, :data:`FILTERS` is
the filter registry and :func:`load_config` reads a run configuration.
"""

from importlib import metadata

try:
    __version__ = metadata.version("xray-scale")
except metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

from .analysis.image import analyse_image
from .config import Config, load_config
from .engines.registry import ENGINES
from .errors import ConfigError, DecodeError, EngineError, InputError, StoreError
from .filters import FILTERS, MASKS
from .io.decode import decode_image, open_images
from .io.sources import discover_inputs
from .run.pipeline import RunSummary, run
from .store.access import open_store

__all__ = [
    "FILTERS",
    "MASKS",
    "Config",
    "ConfigError",
    "DecodeError",
    "ENGINES",
    "EngineError",
    "InputError",
    "RunSummary",
    "StoreError",
    "__version__",
    "analyse_image",
    "decode_image",
    "discover_inputs",
    "load_config",
    "open_images",
    "open_store",
    "run",
]
