"""Decoding one PNG file (asv micro-benchmark).

The file is :func:`_images.chest_png`: the real ChestX-ray8 file ``00000011_000.png`` of
``../shared/data/chestxray8-sample`` when it is there, else the phantom
``xray_scale.io.phantoms.phantom(11, 0)`` written as an 8-bit grayscale PNG into a
temporary folder; 1024 x 1024.
"""

from __future__ import annotations

import tempfile

from xray_scale.io.decode import decode_image

from . import _images


class Decode:
    """:func:`xray_scale.io.decode.decode_image` of one 8-bit grayscale PNG, from disk.

    The file is read each time (the operating system's cache keeps it in memory after
    the first read). ``peakmem_reference`` is the process without the call.
    """

    def setup(self):
        self.folder = tempfile.TemporaryDirectory()
        self.path = _images.chest_png(self.folder.name)
        self.shape = (_images.SIZE, _images.SIZE)
        self.function = decode_image
        error = decode_image(self.path, shape=self.shape).error
        if error:
            raise RuntimeError(f"{self.path} does not decode: {error}")

    def teardown(self):
        self.folder.cleanup()

    def time_decode(self):
        self.function(self.path, shape=self.shape)

    def peakmem_decode(self):
        self.function(self.path, shape=self.shape)

    def peakmem_reference(self):
        pass
