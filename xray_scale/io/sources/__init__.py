"""Where an image's bytes come from: folders, globs and lists (:mod:`.discover`), archives
(:mod:`.archives`, their saved index :mod:`.archive_index`), URLs (:mod:`.urls`), name lists
(:mod:`.namelists`), the NIH manifest (:mod:`.manifest`), and reading one input's bytes
(:mod:`.reading`)."""
