"""What an image's bytes are: the registry of input formats (:mod:`.registry`) and one module per
format. PNG (:mod:`.png`) is the first entry; its GPU decoder (:mod:`.png_gpu`) walks the chunks on
the CPU (:mod:`.png_chunks`) and runs the kernels of :mod:`.png_kernels`, whose NumPy reference is
:mod:`.png_unfilter`."""
