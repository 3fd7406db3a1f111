"""Inputs: finding them (:mod:`.sources`), the NIH manifest (:mod:`.manifest`), decoding PNGs
(:mod:`.decode`; on a GPU :mod:`.gpu_png`, after :mod:`.png_chunks` walks the chunks on the
CPU, with :mod:`.png_unfilter` the NumPy reference of its kernels) and generating chest-like
phantoms (:mod:`.synth`)."""
