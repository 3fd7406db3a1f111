"""Dataset metadata (io/sources/datasets.py) from CSVs in the layouts the datasets publish."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CHEXPERT_HEADER

from xray_scale.errors import InputError
from xray_scale.io.sources.datasets import (
    BLANK,
    CHEXPERT_LABELS,
    NEGATIVE,
    POSITIVE,
    UNCERTAIN,
    read_dataset_metadata,
    recognise,
)


def chexpert_row(path: str, sex: str, age: int, view: str, ap_pa: str, labels: dict) -> str:
    cells = [labels.get(name, "") for name in CHEXPERT_LABELS]
    return f"{path},{sex},{age},{view},{ap_pa}," + ",".join(cells)


@pytest.fixture
def chexpert_csvs(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(
        "\n".join(
            [
                CHEXPERT_HEADER,
                chexpert_row(
                    "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
                    "Female",
                    68,
                    "Frontal",
                    "AP",
                    {"No Finding": "1.0", "Support Devices": "1.0"},
                ),
                chexpert_row(
                    "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg",
                    "Female",
                    87,
                    "Frontal",
                    "AP",
                    {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "Edema": "0.0"},
                ),
                chexpert_row(
                    "CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg",
                    "Female",
                    83,
                    "Lateral",
                    "",
                    {"Lung Opacity": "1.0"},
                ),
            ]
        )
        + "\n"
    )
    valid = tmp_path / "valid.csv"
    valid.write_text(
        CHEXPERT_HEADER
        + "\n"
        + chexpert_row(
            "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg",
            "Male",
            73,
            "Frontal",
            "AP",
            {name: "0.0" for name in CHEXPERT_LABELS},
        )
        + "\n"
    )
    return train, valid


def test_chexpert_keeps_uncertain_distinct_and_takes_ids_from_the_path(chexpert_csvs):
    metadata = read_dataset_metadata(chexpert_csvs)
    assert metadata.dataset == "chexpert" and metadata.label_names == CHEXPERT_LABELS
    inputs = [
        "/data/CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg",
        "/data/chexpert.zip::CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg",
        "/data/CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg",
        "/data/CheXpert-v1.0-small/train/patient09999/study1/view1_frontal.jpg",  # unlisted
    ]
    columns = metadata.columns(inputs)
    assert list(columns["patient_id"]) == ["patient00002", "patient64541", "patient00002", ""]
    assert list(columns["study_id"]) == ["study2", "study1", "study2", ""]
    assert list(columns["follow_up"]) == [2, 1, 2, -1]
    assert list(columns["view_position"]) == ["AP", "AP", "Lateral", ""]
    assert list(columns["patient_age"]) == [87, 73, 83, -1]
    assert columns["labels"][0] == "Cardiomegaly (uncertain)|Lung Opacity"
    labels = metadata.labels(inputs)
    assert labels.shape == (4, 14) and labels.dtype == np.int8
    index = {name: i for i, name in enumerate(CHEXPERT_LABELS)}
    assert labels[0, index["Cardiomegaly"]] == UNCERTAIN
    assert labels[0, index["Lung Opacity"]] == POSITIVE
    assert labels[0, index["Edema"]] == NEGATIVE
    assert labels[0, index["Fracture"]] == BLANK  # not mentioned: neither negative nor uncertain
    assert (labels[1] == NEGATIVE).all() and (labels[3] == BLANK).all()


def test_mimic_metadata_and_labels_are_joined_on_each_dicom_ids_study(tmp_path):
    import gzip

    metadata_csv = tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz"  # as PhysioNet publishes it
    metadata_text = (
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,"
        "Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,"
        "ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning\n"
        "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,10000032,50414267,CHEST (PA AND LAT),PA,"
        "3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect\n"
        "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,10000032,50414267,CHEST (PA AND LAT),LATERAL,"
        "3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect\n"
        "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,10000032,53189527,CHEST (PA AND LAT),PA,"
        "3056,2544,21800626,165500.312,CHEST (PA AND LAT),postero-anterior,Erect\n"
        "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,10000032,53911762,CHEST (PORTABLE AP),AP,"
        "2705,2539,21800221,94843.0,CHEST (PORTABLE AP),antero-posterior,\n"
    )
    metadata_csv.write_bytes(gzip.compress(metadata_text.encode()))
    names = sorted(CHEXPERT_LABELS)
    chexpert_csv = tmp_path / "mimic-cxr-2.0.0-chexpert.csv"

    def row(subject, study, values):
        return f"{subject},{study}," + ",".join(values.get(n, "") for n in names)

    chexpert_csv.write_text(
        "subject_id,study_id,"
        + ",".join(names)
        + "\n"
        + row(10000032, 50414267, {"No Finding": "1.0"})
        + "\n"
        + row(10000032, 53189527, {"Edema": "-1.0", "Pleural Effusion": "1.0"})
        + "\n"
    )
    metadata = read_dataset_metadata([metadata_csv, chexpert_csv])
    assert metadata.dataset == "mimic-cxr-jpg" and metadata.label_names == tuple(names)
    inputs = [
        "files/p10/p10000032/s50414267/174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962.jpg",
        "files/p10/p10000032/s53189527/2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab.jpg",
        "files/p10/p10000032/s53911762/68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714.jpg",
    ]
    columns = metadata.columns(inputs)
    assert list(columns["patient_id"]) == ["10000032"] * 3
    assert list(columns["study_id"]) == ["50414267", "53189527", "53911762"]
    assert list(columns["follow_up"]) == [1, 2, 0]  # by StudyDate: 21800221 is the first
    assert list(columns["view_position"]) == ["LATERAL", "PA", "AP"]
    assert list(columns["labels"]) == ["No Finding", "Edema (uncertain)|Pleural Effusion", ""]
    labels = metadata.labels(inputs)
    assert labels[1, names.index("Edema")] == UNCERTAIN
    assert labels[1, names.index("Pleural Effusion")] == POSITIVE
    assert (labels[2] == BLANK).all()  # a study without a chexpert row: nothing mentioned


def test_padchest_labels_as_text_and_multi_hot_and_an_age_not_a_birth_year(tmp_path):
    csv_path = tmp_path / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
    csv_path.write_text(
        "ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,"
        "ViewPosition_DICOM,Projection,MethodProjection,Labels,Localizations\n"
        "20536686640136348236148679891455886468_k6ga29.png,0,20140915,"
        "20536686640136348236148679891455886468,839860488694292331637988235681460987,1930.0,F,"
        "POSTEROANTERIOR,PA,Manual review of DICOM fields,\"['normal']\",[]\n"
        "135803415504923515076821959678074435083_fzis7b.png,0,20150227,"
        "135803415504923515076821959678074435083,839860488694292331637988235681460987,1930.0,F,"
        "POSTEROANTERIOR,PA,Manual review of DICOM fields,"
        "\"['pleural effusion', ' cardiomegaly']\",[]\n"
        "113855343774216031107737439268243531979_3k951l.png,0,20150227,"
        "135803415504923515076821959678074435083,839860488694292331637988235681460987,1930.0,F,"
        "L,L,Manual review of DICOM fields,\"['pleural effusion']\",[]\n"
    )
    metadata = read_dataset_metadata([csv_path])
    assert metadata.dataset == "padchest"
    assert metadata.label_names == ("cardiomegaly", "normal", "pleural effusion")
    inputs = [
        "/pc/0/135803415504923515076821959678074435083_fzis7b.png",
        "/pc/0/20536686640136348236148679891455886468_k6ga29.png",
        "/pc/0/113855343774216031107737439268243531979_3k951l.png",
    ]
    columns = metadata.columns(inputs)
    assert list(columns["labels"]) == [
        "pleural effusion|cardiomegaly",
        "normal",
        "pleural effusion",
    ]
    assert list(columns["follow_up"]) == [1, 0, 1] and list(columns["patient_age"]) == [85, 84, 85]
    assert list(columns["view_position"]) == ["POSTEROANTERIOR", "POSTEROANTERIOR", "L"]
    assert metadata.labels(inputs).tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert "1930" not in repr(metadata.rows)  # the birth year is not kept


def test_bad_metadata_each_give_a_one_line_error(tmp_path, chexpert_csvs):
    def message(*files) -> str:
        with pytest.raises(InputError) as caught:
            read_dataset_metadata(files)
        assert "\n" not in str(caught.value)
        return str(caught.value)

    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert "columns of no known dataset" in message(other)
    bad_value = tmp_path / "bad.csv"
    bad_value.write_text(
        CHEXPERT_HEADER
        + "\n"
        + chexpert_row(
            "x/patient00001/study1/view1_frontal.jpg", "F", 1, "Frontal", "AP", {"Edema": "2"}
        )
        + "\n"
    )
    assert message(bad_value).endswith("label value '2'; expected 1, 0, -1 or blank")
    assert "line 2" in message(bad_value)
    labels_only = tmp_path / "mimic-cxr-2.0.0-chexpert.csv"
    labels_only.write_text("subject_id,study_id," + ",".join(sorted(CHEXPERT_LABELS)) + "\n")
    assert "without their metadata" in message(labels_only)
    assert "2 datasets" in message(chexpert_csvs[0], labels_only)
    assert recognise(CHEXPERT_HEADER.split(",")) == "chexpert"
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes(CHEXPERT_HEADER.encode() + b"\nx\xe9\n")
    assert "not UTF-8" in message(not_utf8)


def test_a_chexpert_run_with_its_csvs_stores_ids_labels_and_codes(tmp_path, chexpert_csvs):
    import io

    import zarr
    from conftest import structured_image
    from PIL import Image

    from xray_scale.cli import main
    from xray_scale.store.encoding import read_index

    root = tmp_path / "CheXpert-v1.0-small"
    for k, member in enumerate(
        [
            "train/patient00001/study1/view1_frontal.jpg",
            "train/patient00002/study2/view1_frontal.jpg",
            "train/patient00002/study2/view2_lateral.jpg",
            "valid/patient64541/study1/view1_frontal.jpg",
            "train/patient00003/study1/view1_frontal.jpg",  # in no CSV: blank metadata
        ]
    ):
        (root / member).parent.mkdir(parents=True, exist_ok=True)
        out = io.BytesIO()
        Image.fromarray(structured_image(k, (48, 48))).save(out, "JPEG", quality=90)
        (root / member).write_bytes(out.getvalue())
    train, valid = chexpert_csvs
    store = tmp_path / "chexpert.zarr"
    argv = ["run", str(root), "--out", str(store), "--workers", "1"]
    assert main([*argv, "--manifest", str(train), "--manifest", str(valid)]) == 0
    group = zarr.open_group(store, mode="r")
    paths = [p.rpartition("small/")[2] for p in read_index(group, "path")]
    assert paths[:2] == [
        "train/patient00001/study1/view1_frontal.jpg",
        "train/patient00002/study2/view1_frontal.jpg",
    ]
    assert list(read_index(group, "patient_id")) == [
        "patient00001",
        "patient00002",
        "patient00002",
        "",
        "patient64541",
    ]
    assert list(group["index/follow_up"][:]) == [1, 2, 2, -1, 1]
    assert list(read_index(group, "labels"))[1] == "Cardiomegaly (uncertain)|Lung Opacity"
    codes = group["index/label_codes"]
    assert codes.attrs["names"] == list(CHEXPERT_LABELS)
    assert codes.attrs["codes"]["uncertain"] == UNCERTAIN
    assert codes[1, CHEXPERT_LABELS.index("Cardiomegaly")] == UNCERTAIN
    assert (codes[3] == BLANK).all() and (codes[4] == NEGATIVE).all()
    assert group.attrs["xray_scale"]["manifest"]["path"] == f"{train}, {valid}"
    assert main(["export", str(store), "--to", str(tmp_path / "table.csv")]) == 0
    import pandas as pd

    import xray_scale

    tree = xray_scale.open_dataset(store)  # the codes along "label", named
    assert list(tree["label"].values) == list(CHEXPERT_LABELS)
    assert int(tree["label_codes"].sel(label="Cardiomegaly")[1]) == UNCERTAIN
    table = pd.read_csv(tmp_path / "table.csv", keep_default_na=False)
    assert table["label_Cardiomegaly"].tolist() == [BLANK, UNCERTAIN, BLANK, BLANK, NEGATIVE]
    assert table["study_id"].tolist() == ["study1", "study2", "study2", "", "study1"]
