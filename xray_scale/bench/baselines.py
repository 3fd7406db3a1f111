"""What ``xray-scale bench`` compares the tool with: the tutorial's loop and naive dask-image.

The dask-image baseline filters the ``(N, H, W)`` stack with sigma 0 on the
stack axis, as a dask-image user would; :func:`dask_image_differences` says
how far that is from filtering each image on its own.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy import ndimage

from ..filters import reference as filters

__all__ = ["dask_image_differences", "dask_image_loop", "tutorial_loop"]


def tutorial_loop(paths: list[Path]) -> float:
    """The tutorial's code, image by image, as a user would loop it; returns seconds."""
    began = time.perf_counter()
    for path in paths:
        xray_image = iio.imread(path)
        ndimage.gaussian_laplace(xray_image, sigma=1)
        ndimage.gaussian_gradient_magnitude(xray_image, sigma=2)
        x_sobel = ndimage.sobel(xray_image, axis=0)
        y_sobel = ndimage.sobel(xray_image, axis=1)
        xray_image_sobel = np.hypot(x_sobel, y_sobel)
        xray_image_sobel *= 255.0 / np.max(xray_image_sobel)
        xray_image_sobel = xray_image_sobel.astype("float32")
        fourier_gaussian = ndimage.fourier_gaussian(xray_image, sigma=0.05)
        x_prewitt = ndimage.prewitt(fourier_gaussian, axis=0)
        y_prewitt = ndimage.prewitt(fourier_gaussian, axis=1)
        xray_image_canny = np.hypot(x_prewitt, y_prewitt)
        xray_image_canny *= 255.0 / np.max(xray_image_canny)
        np.min(xray_image), np.max(xray_image), np.mean(xray_image), np.median(xray_image)
        ndimage.histogram(xray_image, min=np.min(xray_image), max=np.max(xray_image), bins=256)
        np.where(xray_image > 150, xray_image, 0)
        np.where(xray_image > 150, 1, 0)
    return time.perf_counter() - began


def dask_image_loop(folder: Path, out: Path, workers: int) -> float:
    """What a dask-image user writes for LoG, GGM and Sobel into zarr; returns seconds.

    ``imread`` of the folder's PNGs (one task per file), the stack cast to
    float32, ``gaussian_laplace(stack, sigma=(0, 1, 1))``,
    ``gaussian_gradient_magnitude(stack, sigma=(0, 2, 2))`` and the normalised
    hypot of ``sobel(stack, axis=1)`` and ``axis=2``, the three ``to_zarr`` computed
    together with the threaded scheduler (decoding shared). Writes
    ``out/<name>.zarr`` for :func:`dask_image_differences`.
    """
    import dask
    import dask.array as da
    from dask_image import imread, ndfilters

    began = time.perf_counter()
    with warnings.catch_warnings():  # pims, under dask-image, calls a deprecated skimage.io API
        warnings.filterwarnings("ignore", category=FutureWarning, module="pims")
        stack = imread.imread(str(folder / "*.png")).astype(np.float32)
        log = ndfilters.gaussian_laplace(stack, sigma=(0, 1, 1))
        ggm = ndfilters.gaussian_gradient_magnitude(stack, sigma=(0, 2, 2))
        sobel = da.hypot(ndfilters.sobel(stack, axis=1), ndfilters.sobel(stack, axis=2))
        sobel = sobel * (255.0 / sobel.max(axis=(1, 2), keepdims=True))
        writes = [
            array.to_zarr(str(out / f"{name}.zarr"), compute=False)
            for name, array in (("laplace_gaussian", log), ("ggm", ggm), ("sobel", sobel))
        ]
        dask.compute(*writes, scheduler="threads", num_workers=workers)
    return time.perf_counter() - began


def dask_image_differences(images: list[np.ndarray], out: Path) -> dict[str, dict[str, float]]:
    """Max |dask-image - per-image filtering| over ``images``, absolute and / output range."""
    import zarr

    references = {
        "laplace_gaussian": lambda image: filters.laplace_gaussian(image, sigma=1.0),
        "ggm": lambda image: filters.gaussian_gradient_magnitude(image, sigma=2.0),
        "sobel": filters.sobel,
    }
    differences = {}
    for name, reference in references.items():
        stacked = zarr.open_array(str(out / f"{name}.zarr"), mode="r")
        worst_abs, worst_rel = 0.0, 0.0
        for k, image in enumerate(images):
            expected = reference(image)
            difference = float(np.max(np.abs(stacked[k].astype(np.float64) - expected)))
            spread = float(np.ptp(expected)) or 1.0
            worst_abs, worst_rel = max(worst_abs, difference), max(worst_rel, difference / spread)
        differences[name] = {"max_abs": worst_abs, "relative_to_range": worst_rel}
    return differences
