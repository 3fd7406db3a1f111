"""Running: inputs to a complete store (:mod:`.pipeline`), on a dask cluster (:mod:`.cluster`),
its size and time estimated beforehand (:mod:`.plan`), and the checkpoints at which a
test can count and hold a run (:mod:`.gate`).

``xray_scale.run`` (the package attribute) is the function :func:`.pipeline.run`, not this
package: import from its modules, ``from xray_scale.run.pipeline import run``.
"""
