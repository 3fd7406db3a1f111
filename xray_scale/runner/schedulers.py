"""The names of the places a run's batch tasks can run, with nothing else imported.

Kept apart from :mod:`.cluster` so that ``xray-scale --help`` can list them without importing
the cluster code (which reads URLs and the format registry, and so NumPy).
"""

SCHEDULERS = ("threads", "processes", "distributed", "cuda")
"""Where batch tasks run: local threads, local processes, a dask.distributed
LocalCluster, or dask-cuda's LocalCUDACluster (one worker per GPU)."""
