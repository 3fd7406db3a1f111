"""Analysis: what is computed from decoded pixels. One image (:mod:`.image`), one batch image by
image (:mod:`.batch`) or as one stack (:mod:`.stack`), statistics (:mod:`.stats`), the maps'
names and dtypes and the run's :class:`~xray_scale.records.BatchSpec` (:mod:`.maps`), previews
(:mod:`.previews`), QC (:mod:`.qc`, :mod:`.qc_groups`, :mod:`.outliers`). It computes from
pixels and arrays: it opens no store and imports no zarr (the run's types are in
:mod:`xray_scale.records`)."""
