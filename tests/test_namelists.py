"""Name lists (NIH's test_list.txt) told apart from path lists, and selection by name."""

from __future__ import annotations

import pytest

from xray_scale.errors import InputError
from xray_scale.io.sources.namelists import NOT_IN_INPUTS, read_name_list, select_by_names


def test_nih_split_list_is_a_name_list(tmp_path):
    listing = tmp_path / "test_list.txt"
    listing.write_text("00000003_000.png\r\n00000003_001.png\r\n\r\n00000003_000.png\r\n")
    assert read_name_list(listing) == ["00000003_000.png", "00000003_001.png"]


def test_bare_names_beside_their_files_stay_a_path_list(tmp_path):
    (tmp_path / "00000003_000.png").write_bytes(b"png")
    listing = tmp_path / "list.txt"
    listing.write_text("00000003_000.png\n00000003_001.png\n")  # one exists: a path list
    assert read_name_list(listing) is None


@pytest.mark.parametrize(
    "text",
    [
        "images/00000003_000.png\n",
        "/data/images/00000003_000.png\n",
        "/data/images_001.tar.gz::images/00000003_000.png\n",
        "synth:64/90000001_000.png\n",
        "00000003_000.png\nsub\\00000003_001.png\n",
        "# only comments\n\n",
    ],
)
def test_paths_make_a_path_list(tmp_path, text):
    listing = tmp_path / "list.txt"
    listing.write_text(text)
    assert read_name_list(listing) is None


def test_unreadable_list_is_a_one_line_error(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xff\xfe0\x00")
    with pytest.raises(InputError, match="is not UTF-8 text; save it as UTF-8"):
        read_name_list(listing)


def test_select_by_names_keeps_input_order_and_names_the_missing():
    paths = [
        "/d/images_001.tar.gz::images/00000001_000.png",
        "/d/images_001.tar.gz::images/00000001_001.png",
        "/d/k.zip::images_002/images/00000002_000.png",
        "/d/folder/00000003_000.png",
    ]
    selected, missing = select_by_names(
        paths, ["00000003_000.png", "00000001_001.png", "00000009_000.png", "00000002_000.png"]
    )
    assert selected == [paths[1], paths[2], paths[3]]
    assert missing == ["00000009_000.png"]
    assert NOT_IN_INPUTS == "not in the inputs"


def test_a_listed_name_in_two_inputs_is_refused():
    paths = ["/a.tar.gz::images/00000001_000.png", "/b/00000001_000.png"]
    with pytest.raises(InputError, match="00000001_000.png is in the inputs twice"):
        select_by_names(paths, ["00000001_000.png"])
    assert select_by_names(paths, ["x.png"]) == ([], ["x.png"])  # unlisted twins are fine
