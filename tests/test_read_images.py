"""ImageDataset: a store's ok images as a map-style dataset, in fork and spawn workers alike."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil

import numpy as np
import pytest
import zarr
from conftest import FINDINGS
from dataset_workers import digest, keep, read, scale

import xray_scale
from xray_scale import ImageDataset
from xray_scale.errors import SelectionError, StoreError

OK = [k for k in range(10) if k != 8]  # 00000042_003.png is listed but absent: failed
LABELS = ("Cardiomegaly", "Effusion", "Hernia", "Mass")  # every finding but "No Finding"
START_METHODS = ["fork", "spawn"]


def expected_labels(k: int, names=LABELS) -> list[float]:
    return [float(name in FINDINGS[k].split("|")) for name in names]


def test_items_are_the_ok_films_previews_and_their_findings(labelled_store):
    ds = ImageDataset(labelled_store)
    previews = zarr.open_group(labelled_store, mode="r")["previews"]
    assert len(ds) == 9 and ds.indices.tolist() == OK
    assert ds.label_names == LABELS
    for item, k in enumerate(OK):
        image, labels = ds[item]
        np.testing.assert_array_equal(image, previews[k, 0])  # "original" is map 0
        assert image.dtype == np.uint8 and image.shape == (16, 16) and image.flags.writeable
        assert labels.dtype == np.float32 and labels.tolist() == expected_labels(k)
    np.testing.assert_array_equal(ds[-1][0], ds[8][0])
    with pytest.raises(IndexError, match="item 9 of an ImageDataset of 9 images"):
        ds[9]
    with pytest.raises(TypeError, match="indexed by an int"):
        ds[0:2]


def test_several_arrays_labels_in_order_a_selection_and_a_transform(labelled_store):
    group = zarr.open_group(labelled_store, mode="r")
    ds = ImageDataset(
        labelled_store,
        arrays=["previews/sobel", "filters/sobel", "masks/mask_binary"],
        labels=["Mass", "No Finding"],
        where="view_position == 'PA' and finding_labels.str.contains('Effusion')",
    )
    assert ds.indices.tolist() == [3, 9] and ds.label_names == ("Mass", "No Finding")
    (small, sobel, mask), labels = ds[1]
    sobel_map = list(group["previews"].attrs["maps"]).index("sobel")
    np.testing.assert_array_equal(small, group["previews"][9, sobel_map])
    np.testing.assert_array_equal(sobel, group["filters/sobel"][9])
    np.testing.assert_array_equal(mask, group["masks/mask_binary"][9])
    assert labels.tolist() == [1.0, 0.0]
    scaled = ImageDataset(labelled_store, transform=scale)
    np.testing.assert_allclose(scaled[0][0], ImageDataset(labelled_store)[0][0] / 255)


def test_mistakes_say_what_the_store_has(labelled_store, tmp_path):
    with pytest.raises(StoreError, match=r"unknown array 'previews/blur'; .*previews/original"):
        ImageDataset(labelled_store, arrays="previews/blur")
    with pytest.raises(StoreError, match=r"unknown array 'filters/blur'; .*filters/sobel"):
        ImageDataset(labelled_store, arrays=["filters/blur"])
    with pytest.raises(SelectionError, match="unknown label 'Masss'; .*Mass, No Finding"):
        ImageDataset(labelled_store, labels=["Masss"])
    with pytest.raises(SelectionError, match="unknown column 'mena'"):
        ImageDataset(labelled_store, where="mena < 3")
    with pytest.raises(TypeError, match="sequence of label names"):
        ImageDataset(labelled_store, labels="Mass")
    xray_scale.run(["synth:3x32"], tmp_path / "plain.zarr", workers=1)
    with pytest.raises(StoreError, match=r"no previews.*preview_size > 0.*filters/sobel"):
        ImageDataset(tmp_path / "plain.zarr")
    with pytest.raises(SelectionError, match="no labels .* --manifest"):
        ImageDataset(tmp_path / "plain.zarr", arrays="filters/sobel", labels=["Mass"])
    plain = ImageDataset(tmp_path / "plain.zarr", arrays="filters/sobel")
    assert len(plain) == 3 and plain.label_names == () and plain[0][1].shape == (0,)


def test_it_pickles_small_and_without_the_open_store(labelled_store):
    ds = ImageDataset(labelled_store)
    first = pickle.dumps(ds)
    ds[0]  # opens the store in this process
    assert ds._opened is not None
    after_use = pickle.dumps(ds)
    assert len(after_use) == len(first) < 2048
    clone = pickle.loads(after_use)
    assert clone._opened is None and len(clone) == len(ds)
    assert digest(clone[3][0]) == digest(ds[3][0])


def test_a_cache_file_serves_the_same_items_in_any_order(labelled_store, tmp_path):
    store = tmp_path / "store.zarr"
    shutil.copytree(labelled_store, store)
    plain = ImageDataset(store, arrays=["previews/original", "filters/sobel"])
    cached = ImageDataset(store, arrays=["previews/original", "filters/sobel"], cache=tmp_path)
    files = sorted(tmp_path.glob("*.npy"))
    assert [f.name.split("-")[0] for f in files] == ["filters", "previews"]
    for item in np.random.default_rng(0).permutation(len(plain)):
        assert digest(cached[int(item)][0]) == digest(plain[int(item)][0])
    stamps = [f.stat().st_mtime_ns for f in files]
    again = ImageDataset(store, arrays=["previews/original", "filters/sobel"], cache=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # reused, not rebuilt
    assert len(pickle.dumps(again)) < 2048
    ImageDataset(store, where="view_position == 'PA'", cache=tmp_path)  # other images: its own
    assert len(list(tmp_path.glob("*.npy"))) == 3


@pytest.mark.parametrize("cache", [False, True], ids=["store", "cache"])
@pytest.mark.parametrize("method", START_METHODS)
def test_worker_processes_read_the_same_items(labelled_store, tmp_path, method, cache):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    ds = ImageDataset(labelled_store, cache=tmp_path if cache else None)
    expected = [(item, digest(ds[item][0]), ds[item][1].tolist()) for item in range(len(ds))]
    # The parent has read the store (zarr's event loop thread runs) before its workers start.
    with multiprocessing.get_context(method).Pool(2, initializer=keep, initargs=(ds,)) as pool:
        results = pool.map_async(read, range(len(ds)), chunksize=1).get(timeout=240)
    assert [(item, image, labels) for item, _, image, labels, _ in results] == expected
    assert all(pid != os.getpid() and opened_here for _, pid, _, _, opened_here in results)


@pytest.mark.parametrize("method", START_METHODS)
def test_a_torch_dataloader_with_two_workers(labelled_store, tmp_path, method):
    torch = pytest.importorskip(
        "torch", reason="torch is not installed (pip install torch==2.13.0: a CPU build)"
    )
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    from torch.utils.data import DataLoader

    ds = ImageDataset(labelled_store, transform=scale, cache=tmp_path)
    ds[0]  # the parent reads first
    loader = DataLoader(
        ds,
        batch_size=4,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        num_workers=2,
        multiprocessing_context=method,
        timeout=240,
    )
    seen = {}
    for images, labels in loader:
        assert images.dtype == torch.float32 and images.shape[1:] == (16, 16)
        assert labels.dtype == torch.float32 and labels.shape[1:] == (len(LABELS),)
        for image, label in zip(images.numpy(), labels.numpy(), strict=True):
            seen[digest(image)] = label.tolist()
    expected = {digest(ds[i][0]): ds[i][1].tolist() for i in range(len(ds))}
    assert seen == expected


CHEXPERT_ROWS = {  # a film's path from patientNNNNN/, and its labels' cells in CheXpert's CSV
    "patient00001/study1/view1_frontal.jpg": {"Edema": "1.0", "Cardiomegaly": "-1.0"},
    "patient00002/study1/view1_frontal.jpg": {"Edema": "0.0", "Lung Opacity": "1.0"},
}


@pytest.fixture(scope="module")
def chexpert_store(tmp_path_factory):
    """A run of three JPEG films with CheXpert's train.csv, which lists two of them."""
    from conftest import CHEXPERT_HEADER, structured_image
    from PIL import Image

    from xray_scale.io.sources.datasets import CHEXPERT_LABELS

    root = tmp_path_factory.mktemp("chexpert")
    films = root / "CheXpert-v1.0-small" / "train"
    rows = [CHEXPERT_HEADER]
    for k, path in enumerate([*CHEXPERT_ROWS, "patient00003/study1/view1_frontal.jpg"]):
        (films / path).parent.mkdir(parents=True)
        Image.fromarray(structured_image(k, (32, 32))).save(films / path, "JPEG", quality=90)
        if path in CHEXPERT_ROWS:
            cells = [CHEXPERT_ROWS[path].get(name, "") for name in CHEXPERT_LABELS]
            rows.append(f"CheXpert-v1.0-small/train/{path},Male,60,Frontal,PA," + ",".join(cells))
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    store = root / "chexpert.zarr"
    xray_scale.run([films], store, manifest=[root / "train.csv"], workers=1)
    return store


def test_a_chexpert_store_serves_its_label_codes_as_the_values_asked_for(chexpert_store):
    from xray_scale.io.sources.datasets import CHEXPERT_LABELS

    names = ["Edema", "Cardiomegaly", "Lung Opacity"]
    u_zeros = ImageDataset(chexpert_store, arrays="filters/sobel", labels=names)
    assert u_zeros.label_names == tuple(names) and len(u_zeros) == 3
    assert u_zeros.label_values == {"positive": 1, "negative": 0, "uncertain": 0, "blank": 0}
    assert [u_zeros[k][1].tolist() for k in range(3)] == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    masked = ImageDataset(
        chexpert_store,
        arrays="filters/sobel",
        labels=names,
        label_values={"positive": 1, "negative": 0, "uncertain": 1, "blank": float("nan")},
    )
    labels = masked[1][1]
    assert labels.dtype == np.float32 and labels[0] == 0 and labels[2] == 1
    assert np.isnan(labels[1])  # Cardiomegaly not mentioned for patient00002
    # patient00001: Edema positive, Cardiomegaly uncertain (1: U-Ones), Lung Opacity blank
    np.testing.assert_array_equal(masked[0][1], [1, 1, np.nan])
    every = ImageDataset(chexpert_store, arrays="filters/sobel")
    assert every.label_names == CHEXPERT_LABELS and every[0][1].shape == (len(CHEXPERT_LABELS),)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(masked))[0][1], [1, 1, np.nan])


def test_label_values_must_give_each_code_a_value_and_only_to_codes(chexpert_store, labelled_store):
    with pytest.raises(SelectionError, match=r"uncertain \(-1\).*missing: blank, uncertain$"):
        ImageDataset(
            chexpert_store, arrays="filters/sobel", label_values={"positive": 1, "negative": 0}
        )
    with pytest.raises(SelectionError, match="unknown: certain"):
        values = {"positive": 1, "negative": 0, "uncertain": 1, "blank": 0, "certain": 1}
        ImageDataset(chexpert_store, arrays="filters/sobel", label_values=values)
    with pytest.raises(SelectionError, match="unknown label 'Edemaa'; .*Edema"):
        ImageDataset(chexpert_store, arrays="filters/sobel", labels=["Edemaa"])
    with pytest.raises(SelectionError, match="this store has none .*leave label_values out"):
        ImageDataset(labelled_store, label_values={"positive": 1, "negative": 0})
