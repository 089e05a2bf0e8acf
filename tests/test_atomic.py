"""Atomic writes leave the old file or the new one, never a mixture."""

import os

import pytest

from imgclf._atomic import atomic_path, check_writable


def test_success_replaces_target(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failure_keeps_old_file_and_removes_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_part_left_by_a_killed_process_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "model.imgclf"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = tmp_path / f".model.imgclf.{dead.stdout.strip()}.abc123.part"
    orphan.write_text("half a model")
    alive = tmp_path / f".model.imgclf.{os.getpid()}.xyz.part"  # a writer still at work
    alive.write_text("in progress")
    other = tmp_path / ".other.imgclf.1.abc.part"
    other.write_text("not ours")
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    assert not orphan.exists() and alive.exists() and other.exists()
    assert target.read_text() == "done"


def test_errors_name_the_target_not_the_temporary_file(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "out.txt"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        tmp.write_text("x")
        os.replace(tmp, tmp.with_name("elsewhere"))  # the temporary file vanishes mid-write
        tmp.unlink()  # raises FileNotFoundError naming the temporary file
    assert str(target) in str(info.value) and ".part" not in str(info.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.mkdir(), "it is a folder"),
        (lambda p: p.parent.joinpath("file").write_text("x") or None, None),
    ],
)
def test_check_writable_refuses_folders(tmp_path, make, message):
    target = tmp_path / "out"
    make(target)
    if message is None:  # a path below a regular file
        with pytest.raises(NotADirectoryError, match="is not a folder"):
            check_writable(tmp_path / "file" / "sub" / "out.txt")
    else:
        with pytest.raises(IsADirectoryError, match=message):
            check_writable(target)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_writable_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="no permission"):
        check_writable(folder / "out.txt")


def test_check_writable_accepts_missing_folders(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "c.txt") == tmp_path / "a" / "b" / "c.txt"
