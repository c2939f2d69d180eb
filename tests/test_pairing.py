"""Pairing stereo views by file name (nafcli.jobs.pairing): nothing unmatched is dropped silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from nafcli.errors import ImageReadError
from nafcli.jobs.names import side_of
from nafcli.jobs.pairing import pair_folder, pair_folders


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("0001_L.png", ("0001", "left", "short")),
        ("0001_r.png", ("0001", "right", "short")),
        ("scene_left.jpg", ("scene", "left", "long")),
        ("scene-Right.tif", ("scene", "right", "long")),
        ("a_b_L.png", ("a_b", "left", "short")),
        ("ball.png", None),
        ("L.png", None),
        ("photo_r2.png", None),
    ],
)
def test_side_of(name: str, expected) -> None:
    side = side_of(Path(name))
    assert (None if side is None else (side.key, side.side, side.form)) == expected


def test_pair_folder_flickr_and_long_names(tmp_path: Path) -> None:
    _touch(tmp_path, "0001_L.png", "0001_R.png", "0002_L.png", "0002_R.jpg", "x_left.jpg", "x_right.jpg",
           "0003_L.png", "lonely.png", "notes.txt", ".hidden_L.png", "y_L.png", "y_right.png",
           "0001_L_sr.png")
    result = pair_folder(tmp_path, exclude="_sr")  # nafcli sr's own outputs are not inputs
    assert [(p.left.name, p.right.name) for p in result.pairs] == [
        ("0001_L.png", "0001_R.png"),
        ("0002_L.png", "0002_R.jpg"),
        ("x_left.jpg", "x_right.jpg"),
    ]
    unmatched = {u.path.name: u.reason for u in result.unmatched}
    assert set(unmatched) == {"0003_L.png", "lonely.png", "y_L.png", "y_right.png"}
    assert "no right view" in unmatched["0003_L.png"]
    assert "no side marker" in unmatched["lonely.png"]
    assert "no left view" in unmatched["y_right.png"]  # _L pairs with _R, not with _right
    # without ``exclude`` an earlier output is an input like any other: reported, never dropped silently
    plain = pair_folder(tmp_path)
    assert plain.pairs == result.pairs
    assert {u.path.name for u in plain.unmatched} == set(unmatched) | {"0001_L_sr.png"}


def test_pair_folder_ambiguous_names_are_reported(tmp_path: Path) -> None:
    _touch(tmp_path, "a_L.png", "a_L.jpg", "a_R.png")
    result = pair_folder(tmp_path)
    assert result.pairs == []
    assert sorted(u.path.name for u in result.unmatched) == ["a_L.jpg", "a_L.png", "a_R.png"]
    assert all("ambiguous" in u.reason for u in result.unmatched)


def test_pair_folders_by_name(tmp_path: Path) -> None:
    _touch(tmp_path / "left", "a.png", "b.png", "c_L.png", "d.png")
    _touch(tmp_path / "right", "a.png", "b.jpg", "c_R.png", "e.png")
    result = pair_folders(tmp_path / "left", tmp_path / "right")
    assert [(p.left.name, p.right.name) for p in result.pairs] == [
        ("a.png", "a.png"), ("b.png", "b.jpg"), ("c_L.png", "c_R.png")
    ]
    reasons = {u.path.name: u.reason for u in result.unmatched}
    assert set(reasons) == {"d.png", "e.png"}
    assert reasons["d.png"] == f"no right view in {tmp_path / 'right'}"
    assert reasons["e.png"] == f"no left view in {tmp_path / 'left'}"


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such folder"):
        pair_folder(tmp_path / "nope")


def test_pair_folder_scene_subfolders(tmp_path: Path) -> None:
    """One sub-folder per scene holding its two views (the authors' Flickr1024 layout), beside flat pairs."""
    _touch(tmp_path, "a_L.png", "a_R.png")
    _touch(tmp_path / "scene1", "lr1.png", "lr0.png")
    _touch(tmp_path / "scene2", "hr0.png", "hr1.png", "hr2.png")
    _touch(tmp_path / "scene3", "one.png", "two.png")
    _touch(tmp_path / "empty")
    result = pair_folder(tmp_path)
    assert [(p.key, p.left.name, p.right.name) for p in result.pairs] == [
        ("a", "a_L.png", "a_R.png"), ("scene1", "lr0.png", "lr1.png")
    ]
    assert result.pairs[1].left == tmp_path / "scene1" / "lr0.png"
    reasons = {u.path.name: u.reason for u in result.unmatched}
    assert set(reasons) == {"scene2", "scene3"}
    assert "exactly two views, found 3" in reasons["scene2"]
    assert "cannot tell the left view from the right" in reasons["scene3"]
