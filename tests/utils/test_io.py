import numpy as np
import pytest

from petdiff.utils import (
    atomic_save_npz,
    atomic_write,
    check_output_file,
    check_output_folder,
    staged_outputs,
)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_save_npz_roundtrip(tmp_path):
    path = atomic_save_npz(tmp_path / "a.npz", x=np.arange(4))
    assert np.load(path)["x"].tolist() == [0, 1, 2, 3]


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def _files(folder):
    return {p.name: p.read_text() for p in folder.iterdir() if p.is_file()}


def test_staged_outputs_appear_together_and_replace_an_earlier_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in {"a.txt": "old a", "b.png": "old b", "c.png": "old c", "notes.md": "mine"}.items():
        (out / name).write_text(text)
    with staged_outputs(out, replaces=("*.png", "a.txt")) as stage:
        assert stage.parent == out and stage.name.startswith(".")
        (stage / "a.txt").write_text("new a")
        with atomic_write(stage / "b.png", "w") as f:
            f.write("new b")
        assert _files(out).items() >= {"a.txt": "old a", "b.png": "old b", "c.png": "old c"}.items()
    # c.png belonged to the earlier run only: removed; notes.md matches no pattern: kept.
    assert _files(out) == {"a.txt": "new a", "b.png": "new b", "notes.md": "mine"}


def test_staged_outputs_failure_leaves_the_previous_outputs_intact(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    (out / "b.txt").write_text("old b")
    with pytest.raises(OSError, match="disk full"), staged_outputs(out, replaces=("*.txt",)) as stage:
        (stage / "a.txt").write_text("new a")
        raise OSError("disk full")
    assert _files(out) == {"a.txt": "old a", "b.txt": "old b"}


def test_staged_outputs_failure_removes_a_folder_it_created(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), staged_outputs(out) as stage:
        (stage / "a.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert not out.exists()


def test_output_paths_are_checked_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match=r"--out: expected a file name to write, found an existing folder .*folder"):
        check_output_file(tmp_path / "folder")
    with pytest.raises(ValueError, match=r"--out: expected an output folder, found an existing file .*file"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(ValueError, match=r"--to: expected a path whose parent folders can be created, found a file"):
        check_output_file(tmp_path / "file" / "sub" / "x.npz", what="--to")
    with pytest.raises(ValueError, match="found a file"):
        check_output_folder(tmp_path / "file" / "sub")
    assert check_output_file(tmp_path / "a" / "b.npz") == tmp_path / "a" / "b.npz"
    assert check_output_folder(tmp_path / "folder") == tmp_path / "folder"
    assert not (tmp_path / "a").exists()  # checking creates nothing


def test_staged_folders_replace_their_namesake_whole(tmp_path):
    out = tmp_path / "out"
    with staged_outputs(out) as stage:
        (stage / "series").mkdir()
        (stage / "series" / "a.dcm").write_text("1")
        (stage / "series" / "b.dcm").write_text("1")
    with staged_outputs(out, replaces=("old_series",)) as stage:
        (stage / "series").mkdir()
        (stage / "series" / "a.dcm").write_text("2")
    assert sorted(p.name for p in (out / "series").iterdir()) == ["a.dcm"]
    assert (out / "series" / "a.dcm").read_text() == "2"
    (out / "old_series").mkdir()
    with staged_outputs(out, replaces=("old_series",)) as stage:
        (stage / "x.txt").write_text("x")
    assert not (out / "old_series").exists() and (out / "series").is_dir()


def test_a_folder_where_a_staged_file_goes_blocks_the_whole_commit(tmp_path):
    # every target is checked before anything is replaced: no mix of old and new outputs, the blocking path named
    out = tmp_path / "out"
    with staged_outputs(out) as stage:
        (stage / "enhanced.npz").write_text("old")
        (stage / "enhanced.png").write_text("old")
    (out / "mean.nii.gz").mkdir()
    with pytest.raises(ValueError, match=rf"{out / 'mean.nii.gz'} to be a file .*found a folder"):
        with staged_outputs(out, replaces=("enhanced.*",)) as stage:
            for name in ("enhanced.npz", "enhanced.png", "mean.nii.gz"):
                (stage / name).write_text("new")
    assert (out / "enhanced.npz").read_text() == "old" and (out / "enhanced.png").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["enhanced.npz", "enhanced.png", "mean.nii.gz"]
