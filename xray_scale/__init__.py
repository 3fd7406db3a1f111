"""xray_scale: the NumPy X-ray tutorial's analysis over whole chest X-ray datasets.

The public API: :func:`run` processes PNG inputs into a zarr v3 store,
:func:`open_images` stacks PNGs lazily into a dask array, :data:`FILTERS` is
the filter registry and :func:`load_config` reads a run configuration.
:func:`open_dataset` opens a store as an ``xarray.DataTree``, and
:class:`ImageDataset` serves its images to a training loop. Every error the
package raises on purpose derives from :class:`XrayScaleError`.
``run(..., cluster=JobQueue(...))`` runs the workers as HPC batch jobs (SLURM, PBS, SGE, LSF).

Each public name is imported when first used (a module ``__getattr__``), so
``import xray_scale`` and the ``xray-scale`` command start without loading
SciPy, dask, zarr or OpenCV; the names are the same as when they were
imported eagerly.
"""

import importlib

_PUBLIC = {
    "FILTERS": "xray_scale.filters",
    "ImageDataset": "xray_scale.read.images",
    "MASKS": "xray_scale.filters",
    "Config": "xray_scale.config",
    "ConfigError": "xray_scale.errors",
    "DecodeError": "xray_scale.errors",
    "ENGINES": "xray_scale.engines.registry",
    "EngineError": "xray_scale.errors",
    "InputError": "xray_scale.errors",
    "JobQueue": "xray_scale.runner.jobqueue",
    "RunSummary": "xray_scale.runner.pipeline",
    "StoreError": "xray_scale.errors",
    "XrayScaleError": "xray_scale.errors",
    "analyse_image": "xray_scale.analysis.image",
    "decode_image": "xray_scale.io.decode",
    "discover_inputs": "xray_scale.io.sources.discover",
    "load_config": "xray_scale.config",
    "open_dataset": "xray_scale.read.tree",
    "open_images": "xray_scale.io.decode",
    "open_store": "xray_scale.store.access",
    "run": "xray_scale.runner.pipeline",
}
"""Each public name, and the module it is imported from on first use."""

__all__ = sorted([*_PUBLIC, "__version__"])


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("xray-scale")
    except metadata.PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def __getattr__(name: str):
    """Import a public name on first use (PEP 562), then keep it as a module attribute."""
    if name == "__version__":
        value = _version()
    elif name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    else:
        raise AttributeError(f"module 'xray_scale' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
