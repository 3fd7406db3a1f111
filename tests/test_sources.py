"""sources: discovery order, globs, lists, odd names, ChestX-ray8 name parsing."""

from __future__ import annotations

import os

import pytest
from conftest import structured_image, write_png

from xray_scale.errors import InputError
from xray_scale.io.sources.discover import discover_inputs, parse_image_name


@pytest.fixture
def input_tree(tmp_path):
    for name in ["b.png", "a.PNG", "sub dir/ü 01.png", "sub dir/deeper/c.png", "notes.txt"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("txt"):
            path.write_text("x")
        else:
            write_png(path, structured_image(0, shape=(8, 8)))
    return tmp_path


def test_directories_are_searched_recursively_case_insensitively_and_sorted(input_tree):
    found = discover_inputs([input_tree])
    names = [os.path.relpath(p, input_tree) for p in found]
    assert names == sorted(names)
    assert set(names) == {"a.PNG", "b.png", "sub dir/ü 01.png", "sub dir/deeper/c.png"}
    assert discover_inputs([input_tree, input_tree / "b.png"]) == found  # no duplicates


def test_globs_lists_and_files(input_tree):
    assert [
        os.path.basename(p) for p in discover_inputs([str(input_tree / "sub dir" / "*.png")])
    ] == ["ü 01.png"]
    listing = input_tree / "list.txt"
    listing.write_text(
        "# two files\nb.png\n\n" + str(input_tree / "sub dir" / "ü 01.png") + "\nmissing.png\n"
    )
    listed = discover_inputs([listing])
    assert [os.path.basename(p) for p in listed] == ["b.png", "missing.png", "ü 01.png"]


def test_directories_named_png_are_kept_to_be_reported(tmp_path):
    (tmp_path / "x.png").mkdir()
    write_png(tmp_path / "y.png", structured_image(0, shape=(8, 8)))
    assert [os.path.basename(p) for p in discover_inputs([tmp_path])] == ["x.png", "y.png"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nowhere", "does not exist; give a directory, a glob"),
        (lambda d: d / "empty", "no *.png or *.jpg or *.jpeg"),
        (lambda d: str(d / "*.gif"), "matches no *.png or *.jpg"),
        (lambda d: d / "empty.txt", "holds no paths"),
    ],
)
def test_unusable_inputs_say_what_to_do(tmp_path, make, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(InputError, match=message.replace("*", r"\*").replace("(", r"\(")):
        discover_inputs([make(tmp_path)])


def test_parse_image_name():
    assert parse_image_name("/data/images/00000011_003.png") == ("11", 3)
    assert parse_image_name("00030805_000.PNG") == ("30805", 0)
    assert parse_image_name("0000011_003.png") == ("", -1)
    assert parse_image_name("scan 1.png") == ("", -1)


def test_phantom_source_expands_to_virtual_paths():
    paths = discover_inputs(["synth:11x64"])
    assert len(paths) == 11 and paths == sorted(paths)
    assert paths[9] == "synth:64/90000002_000.png"
    assert parse_image_name(paths[9]) == ("90000002", 0)
    with pytest.raises(InputError, match="write synth:COUNT or synth:COUNTxSIZE"):
        discover_inputs(["synth:many"])
    with pytest.raises(InputError, match="SIZE >= 32"):
        discover_inputs(["synth:3x8"])


def test_symlinked_folders_are_searched(tmp_path):
    images = tmp_path / "elsewhere" / "images"
    write_png(images / "00000011_000.png", structured_image(0, shape=(8, 8)))
    linked = tmp_path / "dataset"
    linked.mkdir()
    (linked / "images_001").symlink_to(images, target_is_directory=True)
    assert discover_inputs([linked]) == [str(linked / "images_001" / "00000011_000.png")]


def test_symlink_cycles_end_and_list_each_image_once(tmp_path):
    images = tmp_path / "real" / "images"
    write_png(images / "a.png", structured_image(0, shape=(8, 8)))
    (images / "back").symlink_to(tmp_path / "real", target_is_directory=True)  # a cycle
    top = tmp_path / "top"
    top.mkdir()
    (top / "images").symlink_to(images, target_is_directory=True)
    (top / "same_images").symlink_to(images, target_is_directory=True)
    assert discover_inputs([top]) == [str(top / "images" / "a.png")]


def test_an_unreadable_folder_is_an_error_not_a_silent_skip(tmp_path, monkeypatch):
    write_png(tmp_path / "ok" / "a.png", structured_image(0, shape=(8, 8)))
    (tmp_path / "locked").mkdir()
    scandir = os.scandir

    def scandir_denying_locked(folder):
        if os.path.basename(folder) == "locked":  # chmod does not stop root, who runs the tests
            raise PermissionError(13, "Permission denied", folder)
        return scandir(folder)

    monkeypatch.setattr(os, "scandir", scandir_denying_locked)
    with pytest.raises(InputError, match=r"cannot read folder .*locked.* \(Permission denied\)"):
        discover_inputs([tmp_path])
    (tmp_path / "locked").rename(tmp_path / "lost+found")  # a volume's own: not searched
    assert discover_inputs([tmp_path]) == [str(tmp_path / "ok" / "a.png")]


def test_lists_keep_virtual_phantom_paths(tmp_path):
    virtual = discover_inputs(["synth:3x64"])
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(virtual) + "\nb.png\n")
    assert discover_inputs([listing]) == sorted([*virtual, str(tmp_path / "b.png")])


def test_recursive_globs_and_walks_survive_link_loops(tmp_path):
    write_png(tmp_path / "top" / "a" / "x.png", structured_image(0, shape=(8, 8)))
    write_png(tmp_path / "top" / "y.png", structured_image(1, shape=(8, 8)))
    (tmp_path / "top" / "a" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "top" / "b").mkdir()
    (tmp_path / "top" / "b" / "a_again").symlink_to("../a", target_is_directory=True)
    (tmp_path / "top" / "self.png").symlink_to("self.png")  # a link to itself
    expected = [str(tmp_path / "top" / name) for name in ("a/x.png", "self.png", "y.png")]
    assert discover_inputs([tmp_path / "top"]) == expected
    assert discover_inputs([str(tmp_path / "top" / "**" / "*.png")]) == expected
    assert discover_inputs([str(tmp_path / "top" / "**" / "x.png")]) == expected[:1]
    assert discover_inputs([str(tmp_path / "top" / "*.png")]) == expected[1:]
