"""The zarr store: its layout (:mod:`.layout`), the run it holds (:mod:`.metadata`), creating
it (:mod:`.create`), reading and writing it (:mod:`.access`), describing it (:mod:`.describe`)
and exporting its per-image table (:mod:`.export`)."""
