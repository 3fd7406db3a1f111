"""The store's layout: its array names, statuses and chunking, in one place.

Layout (``N`` images of ``H x W``, ``K`` images per batch)::

    out.zarr/
      attrs["xray_scale"]    tool version, config, engine, compat, library versions,
                             inputs, image shape, pixel dtype, batch size, times
      filters/<name>         (N, H, W) chunk (1, H, W), shard (K, H, W)
      masks/<name>           (N, H, W) chunk (1, H, W), shard (K, H, W)
      previews               (N, M, h, w) uint8, chunk (K, M, h, w): small images for
                             browsing, when store.preview_size > 0; along the "map" axis
                             the original and each map, named in attrs["maps"]
      stats/<field>          (N,)      min max mean std median p01 p99 mask_fraction
      stats/histogram        (N, 256)  counts
      index/path             (N, w) text  the input file
      index/status           (N,) uint8 code of pending | ok | failed (names in its attrs)
      index/error            (N, w) text  one-line reason when failed, else ""
      index/mode             (N, w) text  Pillow mode of the file (L, I;16, RGB, ...)
      index/bit_depth        (N,) uint8 bits per sample in the file (0: unreadable)
      index/checksum         (N,) uint32 CRC-32 of the file's chunk CRCs when processed
                             (0: failed, phantom, or a store older than this array)
      index/file_height, file_width  (N,) int32 each image's own size before it
                             was resized, with input.size_policy = "resize" only (0: failed)
      index/dicom_*          (N, w) text  the DICOM tags (DICOM_COLUMNS), when any input is DICOM
      index/label_codes      (N, L) int8  a dataset's labels (--manifest with CheXpert's,
                             MIMIC-CXR-JPG's or PadChest's metadata), names in its attrs
      index/patient_id       (N, w) text  from NNNNNNNN_NNN.png, "" when the name differs
      index/follow_up        (N,) int16 from the name, -1 when the name differs
      qc/*                   per-image QC flags, hashes, groups and outlier scores, when
                             the run computes QC (:mod:`xray_scale.store.qc`)

Every array names its dimensions (zarr v3 ``dimension_names``), and a name
has one size across the whole store, so xarray opens every group
(``xr.open_datatree(store, engine="zarr")``): ``image`` is ``N`` everywhere,
``y`` and ``x`` the full resolution, ``map``, ``preview_y`` and ``preview_x``
the previews', ``histogram_bin`` the 256 bins, ``signature_value`` the 1024
values of a QC signature, and each text array's width its own ``<name>_bytes``
(``path_bytes``...), which stays its name when a longer value widens it
(:func:`dimension_names`).

A text array is UTF-8 bytes, NUL-padded to its width ``w``, and statuses are
codes, so that any zarr v3 reader opens every array (see
:mod:`xray_scale.store.encoding`, which reads stores of both this and the older
layout of variable-length strings).

Two tasks writing into one zarr shard lose data silently (zarr-python issues
3514 and 3682), so batch ``b`` covers exactly images ``[b*K, (b+1)*K)`` and
every full-resolution shard (and every chunk of ``previews``) is exactly one
batch deep (:func:`xray_scale.store.access.write_maps` refuses anything else).
The per-image arrays (``stats/*``, ``index/*``) are small and written by one
writer only, the process that runs the pipeline, in chunks of thousands of
images: one chunk per batch would mean hundreds of thousands of tiny files for
the full dump. ``index/status`` is written last, so a batch whose status is
not ``pending`` is complete, whatever happened later.
"""

from __future__ import annotations

from ..records import (
    FILTER_GROUP,
    MASK_GROUP,
    QC_FEATURES,
    QC_FLAGS,
    QC_RECORD_FIELDS,
    SIGNATURE_SIZE,
    STAT_FIELDS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_PENDING,
    map_name,
    split_map_name,
)

__all__ = [
    "ATTRS_KEY",
    "IMAGE_DIM",
    "FILTER_GROUP",
    "HISTOGRAM_CHUNK",
    "INDEX_STRINGS",
    "DICOM_COLUMNS",
    "LABELS",
    "MASK_GROUP",
    "ORIGINAL_SIZE",
    "QC_FEATURES",
    "QC_FLAGS",
    "QC_RECORD_FIELDS",
    "RECORD_CHUNK",
    "SIGNATURE_SIZE",
    "STAT_FIELDS",
    "STATUS_FAILED",
    "STATUS_OK",
    "STATUS_PENDING",
    "STATE_COMPLETE",
    "STATE_CREATING",
    "STATE_KEY",
    "dimension_names",
    "map_name",
    "split_map_name",
]

ORIGINAL_SIZE = ("index/file_height", "index/file_width")
"""Each image's own size before it was resized: a run with ``input.size_policy = "resize"``."""
LABELS = "index/label_codes"
"""A dataset's labels (``--manifest`` with its metadata): ``(N, L)`` int8 codes, the label
names in ``attrs["names"]`` and the codes' meaning in ``attrs["codes"]``."""
DICOM_COLUMNS = {
    "PatientID": "index/dicom_patient_id",
    "StudyInstanceUID": "index/dicom_study_uid",
    "ViewPosition": "index/dicom_view_position",
    "PatientSex": "index/dicom_patient_sex",
    "PatientAge": "index/dicom_patient_age",
    "Manufacturer": "index/dicom_manufacturer",
    "BitsStored": "index/dicom_bits_stored",
    "PhotometricInterpretation": "index/dicom_photometric",
}
"""The text arrays of the DICOM tags a run with DICOM inputs stores (""
for an image that is not DICOM or failed), by tag."""
ATTRS_KEY = "xray_scale"
"""The group attribute holding the run (:class:`xray_scale.store.metadata.RunMetadata`)."""
STATE_KEY = "xray_scale_state"
"""The group attribute marking a store complete: :data:`STATE_CREATING` from the first write of
its creation, :data:`STATE_COMPLETE` after the last. Stores older than it have none."""
STATE_CREATING, STATE_COMPLETE = "creating", "complete"
RECORD_CHUNK = 8192
"""Images per chunk of the per-image arrays (rounded up to whole batches)."""
HISTOGRAM_CHUNK = 1024
"""Images per chunk of ``stats/histogram`` (2 MB of counts)."""
INDEX_STRINGS = ("path", "status", "error", "mode", "patient_id")
"""The text arrays of ``index/`` (and ``status``, of codes), as :mod:`.encoding` stores them."""


IMAGE_DIM = "image"
"""The dimension along which every array of a store holds its ``N`` images."""
_DIMENSIONS = {
    "map": (IMAGE_DIM, "y", "x"),
    "previews": (IMAGE_DIM, "map", "preview_y", "preview_x"),
    "stats/histogram": (IMAGE_DIM, "histogram_bin"),
    "qc/signature": (IMAGE_DIM, "signature_value"),
    LABELS: (IMAGE_DIM, "label"),
}


def dimension_names(name: str, *, text: bool = False) -> tuple[str, ...]:
    """The zarr ``dimension_names`` of the store's array ``name``.

    Each name has one size across the store: xarray refuses a group in which
    a name has two (and a tree in which a group's sizes differ from its
    parent's).

    Parameters
    ----------
    name : str
        The array's path in the store (``"filters/sobel"``, ``"index/path"``).
    text : bool
        Whether it is a text array ``(N, width)``: its width is named
        ``<name>_bytes`` after the array's own name.

    Examples
    --------
    >>> dimension_names("masks/mask_binary")
    ('image', 'y', 'x')
    >>> dimension_names("index/path", text=True)
    ('image', 'path_bytes')
    >>> dimension_names("stats/mean")
    ('image',)
    """
    if text:
        return (IMAGE_DIM, f"{name.rpartition('/')[2]}_bytes")
    if name.partition("/")[0] in (FILTER_GROUP, MASK_GROUP):
        return _DIMENSIONS["map"]
    return _DIMENSIONS.get(name, (IMAGE_DIM,))
