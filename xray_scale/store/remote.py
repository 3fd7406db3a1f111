"""A store on object storage: what is at its URL, and replacing it without a rename.

Object storage has no rename, so a store at a URL is built in place: the
root ``zarr.json`` is written first with the completion marker set to
``creating`` (:data:`xray_scale.store.layout.STATE_KEY`), and set to
``complete`` by the last write of the creation. Every reader checks the
marker (:func:`xray_scale.store.access.open_store`), so a half-made store is
never taken for a complete one. ``--overwrite`` first sets the marker back
to ``creating``, then deletes only what xray-scale writes (the root
``zarr.json`` and the arrays and groups the store holds), the root ``zarr.json`` last, so
a replacement killed midway is still recognised as ours the next time.
"""

from __future__ import annotations

import json

import zarr

from ..errors import StoreError
from .layout import (
    ATTRS_KEY,
    STATE_CREATING,
    STATE_KEY,
)
from .location import StoreLocation, describe_failure

__all__ = ["ABSENT", "FOREIGN", "OURS", "probe", "remove_store"]

ABSENT, OURS, FOREIGN = "absent", "ours", "foreign"
"""What :func:`probe` finds at a URL: nothing, a store of ours (complete or not), something else."""


def _fail(location: StoreLocation, error: BaseException) -> StoreError:
    return StoreError(f"cannot use the store {location}: {describe_failure(error)}")


def probe(location: StoreLocation) -> str:
    """What is at a URL store's place: :data:`ABSENT`, :data:`OURS` or :data:`FOREIGN`.

    Raises
    ------
    StoreError
        Naming the URL (never a credential) when the bucket does not exist,
        the credentials are refused, or the endpoint cannot be reached.
    """
    filesystem, root = location.filesystem()
    root = root.rstrip("/")
    try:
        filesystem.invalidate_cache()
        bucket = root.split("/", 1)[0]
        if bucket and not root.startswith("/"):
            try:
                filesystem.info(bucket)
            except FileNotFoundError:
                raise StoreError(
                    f"cannot use the store {location}: no such bucket {bucket!r}; create it first"
                ) from None
        try:
            listing = filesystem.ls(root, refresh=True)
        except FileNotFoundError:
            return ABSENT
        if not listing:
            return ABSENT
        try:
            metadata = json.loads(filesystem.cat_file(f"{root}/zarr.json"))
        except FileNotFoundError:
            return FOREIGN
    except StoreError:
        raise
    except Exception as error:  # each client has its own errors: say which URL and why
        raise _fail(location, error) from None
    is_ours = isinstance(metadata, dict) and ATTRS_KEY in metadata.get("attributes", {})
    return OURS if is_ours else FOREIGN


def remove_store(location: StoreLocation) -> None:
    """Delete a store of ours at a URL: marker first, then its arrays, root ``zarr.json`` last.

    Objects under the URL that are not part of the store's layout are left.

    Raises
    ------
    StoreError
        If the store cannot be deleted.
    """
    filesystem, root = location.filesystem()
    root = root.rstrip("/")
    try:
        group = zarr.open_group(location.zarr_store(), mode="r+", zarr_format=3)
        group.attrs[STATE_KEY] = STATE_CREATING  # from now on no reader takes it as complete
        nodes = {*group.group_keys(), *group.array_keys()}  # the arrays and groups it made
        ours = [key for key in filesystem.find(root) if key[len(root) + 1 :].split("/")[0] in nodes]
        if ours:
            filesystem.rm(ours)
        filesystem.rm(f"{root}/zarr.json")
        filesystem.invalidate_cache()
    except Exception as error:  # each client has its own errors: say which URL and why
        raise _fail(location, error) from None
