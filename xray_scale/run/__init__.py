"""Running: inputs to a complete store (:mod:`.pipeline`), on a dask cluster (:mod:`.cluster`),
and its size and time estimated beforehand (:mod:`.plan`).

``xray_scale.run`` (the package attribute) is the function :func:`.pipeline.run`, not this
package: import from its modules, ``from xray_scale.run.pipeline import run``.
"""
