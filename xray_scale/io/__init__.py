"""Inputs: finding them (:mod:`.sources`), the NIH manifest (:mod:`.manifest`), decoding PNGs
(:mod:`.decode`) and generating chest-like phantoms (:mod:`.synth`)."""
