"""Running: the top layer, which orchestrates the rest.

Inputs to a complete store (:mod:`.pipeline`, in named steps: :mod:`.prepare`, the batch task
:mod:`.task`, :mod:`.execute`, and the end of the run, :mod:`.finish`), on a dask cluster
(:mod:`.cluster`; its scheduler names alone in :mod:`.schedulers`, for a light ``--help``), its
size and time estimated beforehand (:mod:`.plan`), and the checkpoints at which a test can count
and hold a run (:mod:`.gate`).

The public :func:`xray_scale.run` is :func:`.pipeline.run`.
"""
