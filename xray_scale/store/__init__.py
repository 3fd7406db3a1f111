"""The zarr store: its layout (:mod:`.layout`), the run it holds (:mod:`.metadata`), creating
it (:mod:`.create`), reading and writing it (:mod:`.access`; a batch's shards, :mod:`.writer`;
the QC arrays, :mod:`.qc`), describing it (:mod:`.describe`) and exporting its per-image table
(:mod:`.export`, selected by :mod:`.query`). It reads and writes arrays and runs no analysis."""
