"""What a run stores besides the maps: statistics and previews (asv micro-benchmarks).

The image is :func:`_images.chest_image`: the real ChestX-ray8 image
``00000011_000.png`` of ``../shared/data/chestxray8-sample`` when it is there, else the
phantom ``xray_scale.io.phantoms.phantom(11, 0)``; uint8, 1024 x 1024.
"""

from __future__ import annotations

from xray_scale.analysis.previews import preview_shape, to_preview
from xray_scale.analysis.stats import image_stats
from xray_scale.config import Config
from xray_scale.filters import laplace_gaussian

from . import _images


class ImageStats:
    """:func:`xray_scale.analysis.stats.image_stats` of one image at the default threshold (150).

    Its min, max, mean, std, median, p01, p99, mask fraction and 256-bin histogram.
    """

    def setup(self):
        self.image = _images.chest_image()
        self.function = image_stats
        self.threshold = Config().threshold

    def time_image_stats(self):
        self.function(self.image, threshold=self.threshold)


class Preview:
    """:func:`xray_scale.analysis.previews.to_preview` of one float32 map to 256 x 256.

    The map is the Laplace-Gaussian of the image; the preview's longer side is a
    quarter of the image's (256 for 1024 x 1024), shaped by
    :func:`xray_scale.analysis.previews.preview_shape` as a run with ``store.preview_size``
    shapes it.
    """

    def setup(self):
        self.values = laplace_gaussian(_images.chest_image())
        self.shape = preview_shape(self.values.shape, _images.SIZE // 4)
        self.function = to_preview

    def time_to_preview(self):
        self.function(self.values, self.shape)
