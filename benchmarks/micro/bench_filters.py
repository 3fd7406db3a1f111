"""Filters and masks, one image, per engine (asv micro-benchmarks).

The image is :func:`_images.chest_image`: the real ChestX-ray8 image
``00000011_000.png`` of ``../shared/data/chestxray8-sample`` when it is there, else the
phantom ``xray_scale.io.phantoms.phantom(11, 0)``; uint8, 1024 x 1024.
"""

from __future__ import annotations

from xray_scale.config import Config
from xray_scale.engines.registry import engine_filters, engine_masks, resolve_engine
from xray_scale.errors import EngineError
from xray_scale.filters import FILTERS, MASKS

from . import _images

ENGINES = ["scipy", "opencv"]
"""The concrete engines; one that cannot run here is skipped (NotImplementedError)."""


def _check_engine(engine: str) -> None:
    """Raise NotImplementedError, asv's "skip", if ``engine`` cannot run here."""
    try:
        resolve_engine(engine)
    except EngineError as error:
        raise NotImplementedError(str(error)) from None


class Filters:
    """One filter of the registry on one image, with its default parameters.

    Parameters
    ----------
    engine : {"scipy", "opencv"}
        Whose implementation (:func:`xray_scale.engines.engine_filters`); ``canny`` is
        the scikit-image reference in both.
    filter : str
        A name of :data:`xray_scale.filters.FILTERS`, called with
        ``FILTERS[filter].defaults()``.

    Notes
    -----
    ``peakmem_filter`` is the peak RSS of the whole process (interpreter, libraries,
    the image); ``peakmem_reference`` is the same process without the call, so the
    filter's own memory is the difference of the two.
    """

    params = (ENGINES, list(FILTERS))
    param_names = ["engine", "filter"]

    def setup(self, engine, name):
        _check_engine(engine)
        self.image = _images.chest_image()
        self.function = engine_filters(engine)[name]
        self.kwargs = FILTERS[name].defaults()

    def time_filter(self, engine, name):
        self.function(self.image, **self.kwargs)

    def peakmem_filter(self, engine, name):
        self.function(self.image, **self.kwargs)

    def peakmem_reference(self, engine, name):
        pass


class Masks:
    """One threshold mask on one image, at the default threshold (150).

    Parameters
    ----------
    engine : {"scipy", "opencv"}
        Whose implementation (:func:`xray_scale.engines.engine_masks`).
    mask : str
        A name of :data:`xray_scale.filters.MASKS`.
    """

    params = (ENGINES, list(MASKS))
    param_names = ["engine", "mask"]

    def setup(self, engine, name):
        _check_engine(engine)
        self.image = _images.chest_image()
        self.function = engine_masks(engine)[name]
        self.threshold = Config().threshold

    def time_mask(self, engine, name):
        self.function(self.image, self.threshold)
