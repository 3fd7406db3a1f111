"""A store's ok images as a map-style training set: ``len(ds)``, ``ds[i] -> (image, labels)``.

:class:`ImageDataset` is what a PyTorch ``DataLoader`` takes (any object with
``__len__`` and ``__getitem__``), without this package importing torch: an
item is NumPy arrays, which the loader's collate function stacks into tensors.

Workers. A loader's workers are processes, forked or spawned. The dataset
holds no open store: each process opens it on its first item (keyed by its
process id, so a forked child never uses its parent's handles), and pickling
it (as spawn does, once per worker) carries only the store's location, the
selected images' indices and their label codes (a byte per label). zarr-python (3.0.3 and
later) restarts its event loop thread in a forked child, so a parent that
read the store before forking is safe too (a loop thread forked mid-run was
the hang of zarrs-python issue 171 and iohub issue 416).

Reading. Each ``previews`` chunk holds every preview of one batch of images
(``K`` images x ``M`` maps); a process keeps the last chunk of each array it
read, so consecutive indices (a loader without shuffling) decode each chunk
once, but a shuffled loader decompresses a whole chunk for each image. With
``cache=`` a folder, the served images are decoded once, chunk by chunk, into
a file there that every worker memory-maps (:mod:`.cache`): then an item, in
any order, is a copy of its bytes. A full-resolution map is one chunk per image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import zarr

from ..errors import SelectionError, StoreError
from ..store.access import open_store
from ..store.encoding import read_index
from ..store.layout import FILTER_GROUP, LABELS, MASK_GROUP, STATUS_OK
from ..store.location import StoreLocation, store_location
from ..store.metadata import RunMetadata
from .cache import cache_path, cached_images
from .labels import FINDINGS_COLUMN, NO_FINDING, finding_names, multi_hot

__all__ = ["PREVIEWS", "ImageDataset"]

PREVIEWS = "previews"
"""The array of previews: ``previews/<map>`` names one map of it (``previews/original``)."""


class ImageDataset:
    """The ``ok`` images of a store as a map-style dataset, for a PyTorch ``DataLoader``.

    Parameters
    ----------
    store : path-like or str
        A store written by :func:`xray_scale.run` (a folder, or a URL).
    arrays : str or sequence of str
        What an item's image is: ``"previews/<map>"`` (one map of the
        ``previews`` array: ``"previews/original"`` is the film itself, at
        the previews' size), ``"filters/<name>"`` or ``"masks/<name>"`` (a
        full-resolution map). One name gives one array per item; a sequence
        gives a tuple of arrays, in its order.
    labels : sequence of str, optional
        The labels of the label vector, in order. A store made with NIH's
        ``Data_Entry_2017.csv`` as ``--manifest`` has its ``Finding Labels``:
        None is every label its images have except ``"No Finding"`` (the
        absence of the others), sorted. A store made with CheXpert's,
        MIMIC-CXR's or PadChest's metadata has label codes
        (``index/label_codes``): None is every label it has, in its order.
        A store made without a manifest has none: an empty vector.
    label_values : mapping of str to float, optional
        For a store with label codes, the value each code takes in the label
        vector, by the code's name: ``"positive"``, ``"negative"``,
        ``"uncertain"`` (CheXpert's and MIMIC's -1) and ``"blank"`` (not
        mentioned), every one of them. None: 1.0 for positive and 0.0 for the
        others (CheXpert's "U-Zeros"). ``{"positive": 1, "negative": 0,
        "uncertain": 1, "blank": 0}`` is "U-Ones"; ``float("nan")`` marks a
        label for a masked loss to leave out. NIH's findings are 1.0 or 0.0
        and take no values.
    where : str, optional
        Keep only the images for which this condition over the store's table
        is true, as ``--where`` takes it (``"view_position == 'PA'"``,
        ``"mean < 90 and not qc_framed"``; the columns are those of
        ``xray-scale export``).
    transform : callable, optional
        Applied to an item's image (the tuple, for a sequence of ``arrays``)
        before it is returned. A spawned worker unpickles it: a function
        defined at a module's top level, not a lambda.
    cache : path-like, optional
        A folder on a local disk: the images this dataset serves are decoded
        there once, into one ``.npy`` file per array (64 KiB per image for a
        256 x 256 preview), and every process reads them memory-mapped, in
        any order, without decompressing a chunk per item. The file is named
        after the store's run, the array and the images, so it is reused by
        the same selection of the same store and never by another. None: read
        the store (a shuffled loader then decompresses a chunk per item).
    storage_options : dict or list of str, optional
        Options of a URL store's file system.

    Attributes
    ----------
    indices : numpy.ndarray
        The store index of each item: item ``i`` is image ``indices[i]``.
    label_names : tuple of str
        What each entry of the label vector says.
    label_values : dict of str to float
        The value of each code in the label vector (``{"positive": 1.0,
        "negative": 0.0}`` for NIH's findings).

    Raises
    ------
    StoreError
        If ``store`` is not a store, or lacks an array of ``arrays``.
    SelectionError
        For an unknown label, ``label_values`` that do not give every code of
        the store a value (or a store without codes), or a ``where``
        condition that cannot be evaluated.

    Examples
    --------
    >>> import xray_scale
    >>> store = getfixture("tmp_path") / "s.zarr"
    >>> _ = xray_scale.run(["synth:4x64"], store, config={"store": {"preview_size": 32}})
    >>> ds = xray_scale.ImageDataset(store)
    >>> image, labels = ds[0]
    >>> len(ds), image.shape, image.dtype.name, labels.shape
    (4, (32, 32), 'uint8', (0,))
    """

    def __init__(
        self,
        store: str | os.PathLike | StoreLocation,
        *,
        arrays: str | Sequence[str] = "previews/original",
        labels: Sequence[str] | None = None,
        label_values: Mapping[str, float] | None = None,
        where: str | None = None,
        transform: Callable | None = None,
        cache: str | os.PathLike | None = None,
        storage_options: dict | list[str] | None = None,
    ) -> None:
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable (or None), got {transform!r}")
        location = store_location(store, storage_options)
        group = open_store(location)
        single = isinstance(arrays, str)
        names = (arrays,) if single else tuple(arrays)
        if not names or not all(isinstance(name, str) for name in names):
            raise TypeError(f"arrays must be an array's name or a sequence of them, got {arrays!r}")
        self._location = location
        self._single = single
        self._sources = tuple(_source(group, name) for name in names)
        self.arrays = names
        self.transform = transform
        indices = _selected(group, where)
        self.indices = indices.astype(np.int32 if len(indices) < 2**31 else np.int64)
        self.label_names, self._labels, self.label_values, self._value_of = _labels(
            group, labels, label_values, indices
        )
        self._files = None if cache is None else self._cache_files(group, Path(cache), indices)
        self._opened: tuple[int, tuple] | None = None
        self._chunks: dict[int, tuple[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        """``(image, labels)`` of item ``item``: arrays as stored, labels as float32 values."""
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise TypeError(f"an ImageDataset is indexed by an int, not {type(item).__name__}")
        if not -len(self) <= item < len(self):
            raise IndexError(f"item {item} of an ImageDataset of {len(self)} images")
        item = int(item) % len(self)
        index = int(self.indices[item])
        opened = self._open()
        if self._files is not None:  # memory-mapped: a copy, so the caller owns a writable array
            images = tuple(np.array(mapped[item]) for mapped in opened)
        else:
            images = tuple(
                self._read(k, array, where, index)
                for k, (array, (_, where)) in enumerate(zip(opened, self._sources, strict=True))
            )
        image = images[0] if self._single else images
        if self.transform is not None:
            image = self.transform(image)
        codes, values = self._value_of
        return image, values[np.searchsorted(codes, self._labels[item])]

    def __getstate__(self) -> dict:
        """What pickling carries: no open store, no cached chunk (each process opens its own)."""
        state = dict(self.__dict__)
        state["_opened"], state["_chunks"] = None, {}
        return state

    def __repr__(self) -> str:
        return (
            f"ImageDataset({str(self._location)!r}, {len(self)} images, arrays={self.arrays!r}, "
            f"{len(self.label_names)} labels)"
        )

    def _cache_files(self, group: zarr.Group, folder: Path, indices: np.ndarray) -> tuple:
        """Each source's cache file in ``folder``, decoded from the store where absent."""
        fingerprint = RunMetadata.from_group(group).fingerprint
        files = []
        for source, where in self._sources:
            path = cache_path(
                folder, fingerprint=fingerprint, source=source, where=where, indices=indices
            )
            files.append(str(cached_images(path, group[source], where=where, indices=indices)))
        return tuple(files)

    def _open(self) -> tuple:
        """This process's arrays (or cache files), opened on its first item.

        Keyed by the process id: a forked child opens its own.
        """
        pid = os.getpid()
        if self._opened is None or self._opened[0] != pid:
            if self._files is not None:
                arrays = tuple(np.load(path, mmap_mode="r") for path in self._files)
            else:
                group = open_store(self._location)
                arrays = tuple(group[path] for path, _ in self._sources)
            self._opened = (pid, arrays)
            self._chunks = {}
        return self._opened[1]

    def _read(self, k: int, array: zarr.Array, where: int | None, index: int) -> np.ndarray:
        """Image ``index`` of source ``k``: its map ``where`` of a ``previews`` chunk, kept."""
        if where is None:
            return array[index]
        depth = array.chunks[0]
        start = index // depth * depth
        cached = self._chunks.get(k)
        if cached is None or cached[0] != start:
            cached = (start, array[start : start + depth, where])
            self._chunks[k] = cached
        return cached[1][index - start].copy()


def _source(group: zarr.Group, name: str) -> tuple[str, int | None]:
    """``(array path, map index)`` of an ``arrays`` name (the index only for a preview)."""
    kind, _, key = name.partition("/")
    if kind == PREVIEWS:
        if PREVIEWS not in group:
            raise StoreError(
                f"this store has no previews, so it cannot serve {name!r}: make the store with "
                "store.preview_size > 0 (configs/full-dump.toml), or give arrays= "
                f"one of its maps: {', '.join(_maps(group)) or 'none'}"
            )
        maps = list(group[PREVIEWS].attrs["maps"])
        if key in maps:
            return PREVIEWS, maps.index(key)
    elif kind in (FILTER_GROUP, MASK_GROUP) and key and name in group:
        return name, None
    previews = group[PREVIEWS].attrs["maps"] if PREVIEWS in group else []
    choices = [f"{PREVIEWS}/{m}" for m in previews]
    raise StoreError(
        f"unknown array {name!r}; this store has: {', '.join(choices + _maps(group)) or 'none'}"
    )


def _maps(group: zarr.Group) -> list[str]:
    return [
        f"{kind}/{name}"
        for kind in (FILTER_GROUP, MASK_GROUP)
        if kind in group
        for name in sorted(group[kind].array_keys())
    ]


def _selected(group: zarr.Group, where: str | None) -> np.ndarray:
    """Store indices of the ok images for which ``where`` holds, in store order."""
    ok = read_index(group, "status") == STATUS_OK
    if where is None:
        return np.flatnonzero(ok)
    if not isinstance(where, str):
        raise TypeError(f"where must be a condition (str), got {where!r}")
    from ..store.export import store_table
    from ..store.query import RowQuery, select_rows

    rows = select_rows(store_table(group), RowQuery(where=where))["image"].to_numpy()
    chosen = np.zeros(len(ok), dtype=bool)
    chosen[rows] = True
    return np.flatnonzero(ok & chosen)


def _labels(
    group: zarr.Group,
    labels: Sequence[str] | None,
    label_values: Mapping[str, float] | None,
    indices: np.ndarray,
) -> tuple[tuple[str, ...], np.ndarray, dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """The label names, their ``(len(indices), L)`` int8 codes, each code's value by name,
    and the lookup from code to value: ``(sorted codes, float32 values)``."""
    if isinstance(labels, str):
        raise TypeError(f"labels must be a sequence of label names, not one string ({labels!r})")
    if LABELS in group:
        array = group[LABELS]
        known = tuple(array.attrs["names"])
        names = known if labels is None else _chosen(labels, known)
        columns = [known.index(name) for name in names]
        codes = np.asarray(array[:])[np.ix_(indices, columns)].astype(np.int8)
        meaning = {name: int(code) for name, code in array.attrs["codes"].items()}
        values = _code_values(label_values, meaning)
    else:
        if label_values is not None:
            raise SelectionError(
                "label_values gives the codes of CheXpert's, MIMIC-CXR's or PadChest's labels a "
                "value; this store has none (NIH's findings are 1 or 0): leave label_values out"
            )
        names, codes = _findings(group, labels, indices)
        meaning = {"positive": 1, "negative": 0}  # multi-hot
        values = _code_values(None, meaning)
    by_code = sorted((meaning[name], value) for name, value in values.items())
    lookup = (
        np.array([c for c, _ in by_code], np.int8),
        np.array([v for _, v in by_code], np.float32),
    )
    return names, codes, values, lookup


def _findings(
    group: zarr.Group, labels: Sequence[str] | None, indices: np.ndarray
) -> tuple[tuple[str, ...], np.ndarray]:
    """NIH's finding labels chosen and their ``(len(indices), L)`` int8 multi-hot matrix."""
    if FINDINGS_COLUMN not in group["index"]:
        if labels:
            raise SelectionError(
                "this store has no labels (it was made without --manifest): run it with "
                "--manifest and the dataset's metadata (Data_Entry_2017.csv), or give labels=None"
            )
        return (), np.zeros((len(indices), 0), dtype=np.int8)
    findings = read_index(group, FINDINGS_COLUMN)
    known = finding_names(findings)
    names = tuple(n for n in known if n != NO_FINDING) if labels is None else _chosen(labels, known)
    return names, multi_hot(findings[indices], names).astype(np.int8)


def _chosen(labels: Sequence[str], known: tuple[str, ...]) -> tuple[str, ...]:
    """``labels`` as a tuple, each one checked to be among the store's ``known`` labels."""
    names = tuple(labels)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SelectionError(
            f"unknown label {unknown[0]!r}; this store's labels are: {', '.join(known) or 'none'}"
        )
    return names


def _code_values(
    label_values: Mapping[str, float] | None, meaning: dict[str, int]
) -> dict[str, float]:
    """The value of each code name of the store: ``label_values``, checked, or U-Zeros."""
    if label_values is None:
        return {name: float(code == 1) for name, code in meaning.items()}
    if not isinstance(label_values, Mapping):
        raise TypeError(
            f"label_values must be a mapping of code names to values, not {label_values!r}"
        )
    given, wanted = set(label_values), set(meaning)
    if given != wanted:
        missing, unknown = sorted(wanted - given), sorted(given - wanted)
        raise SelectionError(
            "label_values must give a value to each code of this store's labels: "
            + ", ".join(f"{name} ({meaning[name]})" for name in meaning)
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return {name: float(label_values[name]) for name in meaning}
