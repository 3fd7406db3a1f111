"""Inputs, by concern: where the bytes come from (:mod:`.sources`), what format they are in and
how each format decodes (:mod:`.formats`, a registry with PNG as its first entry), the
format-independent decode of one image, a batch or a lazy stack (:mod:`.decode`), and generated
chest-like phantoms for the ``synth:`` inputs (:mod:`.phantoms`)."""
