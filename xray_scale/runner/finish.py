"""The end of a run: the QC of the whole run, computed from the store and written back.

Once no image is pending, :func:`finish_qc` reads every image's stored hashes
and outlier features (:func:`xray_scale.store.qc.read_qc_inputs`), groups the
duplicates and near duplicates (:mod:`xray_scale.analysis.qc_groups`), scores
and flags the outliers (:mod:`xray_scale.analysis.outliers`), and has the store
write the results (:func:`xray_scale.store.qc.write_qc_results`). The analysis
computes from arrays and the store reads and writes them: this module is the
only one that asks both.
"""

from __future__ import annotations

import numpy as np
import zarr

from ..analysis.outliers import OUTLIER_FEATURES, outlier_distance
from ..analysis.qc_groups import group_duplicates, group_near_duplicates, outlier_scores
from ..config import QCConfig
from ..store.qc import QCInputs, read_qc_inputs, write_qc_results

__all__ = ["finish_qc"]


def _outliers(inputs: QCInputs, config: QCConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """``(qc/outlier_score, qc/outlier)`` of the ok images; no flags in a store made before them.

    Such a store keeps the score it was made with: the largest robust z-score of
    its statistics.
    """
    if inputs.features is None:
        return outlier_scores(inputs.stats, inputs.ok), None
    scores = outlier_distance(inputs.features, inputs.ok)
    return scores, inputs.ok & (scores > config.outlier_threshold)


def finish_qc(group: zarr.Group, config: QCConfig) -> bool:
    """Group duplicates and near duplicates and score outliers, over every ok image.

    Does nothing (and returns False) while an image is pending: the groups and
    scores are those of the whole run.

    Parameters
    ----------
    group : zarr.Group
        The run's store, open for writing.
    config : QCConfig
        The run's QC thresholds.

    Returns
    -------
    bool
        Whether the groups and scores were written.
    """
    inputs = read_qc_inputs(group, tuple(OUTLIER_FEATURES))
    if inputs is None:
        return False
    scores, flags = _outliers(inputs, config)  # issue 24: the robust distance and qc/outlier
    write_qc_results(
        group,
        duplicate_group=group_duplicates(inputs.pixel_hash, inputs.ok),
        near_duplicate_group=group_near_duplicates(
            inputs.perceptual_hash,
            inputs.signature,  # read a block of rows at a time, never whole
            inputs.ok,
            max_distance=config.near_duplicate_distance,
            min_correlation=config.near_duplicate_correlation,
        ),
        outlier_score=scores,
        outlier=flags,
    )
    return True
