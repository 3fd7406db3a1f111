"""Running: inputs to a complete store (:mod:`.pipeline`), on a dask cluster (:mod:`.cluster`),
its size and time estimated beforehand (:mod:`.plan`), and the checkpoints at which a
test can count and hold a run (:mod:`.gate`).

The public :func:`xray_scale.run` is :func:`.pipeline.run`.
"""
