from __future__ import annotations

import threading

import pytest

from petdiff.training import rundir
from petdiff.training.rundir import find_latest_state, make_run_dir


def test_numbers_runs_in_order(tmp_path):
    root = tmp_path / "results"
    assert make_run_dir(root, "pet_cpu_64") == root / "00000-pet_cpu_64"
    assert make_run_dir(root, "pet_cpu_64") == root / "00001-pet_cpu_64"
    assert make_run_dir(root, "other") == root / "00002-other"


def test_next_free_number_after_gaps_and_files(tmp_path):
    (tmp_path / "00003-old").mkdir()
    (tmp_path / "00007-x.txt").write_text("a file also takes its number")
    (tmp_path / "notes").mkdir()
    run = make_run_dir(tmp_path, "new")
    assert run.name == "00008-new"
    assert (tmp_path / "00003-old").is_dir() and run.is_dir()


def test_retries_when_a_concurrent_creator_takes_the_number(tmp_path, monkeypatch):
    real_next_id = rundir._next_id
    calls = []

    def racing_next_id(root):
        n = real_next_id(root)
        if not calls:  # another process creates the same folder between our scan and our mkdir
            (root / f"{n:05d}-run").mkdir()
        calls.append(n)
        return n

    monkeypatch.setattr(rundir, "_next_id", racing_next_id)
    assert make_run_dir(tmp_path, "run").name == "00001-run"
    assert calls == [0, 1]


def test_concurrent_creators_get_distinct_numbers(tmp_path):
    barrier = threading.Barrier(8)
    made = []

    def worker(i):
        barrier.wait()
        made.append(make_run_dir(tmp_path, f"w{i % 2}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = sorted(int(p.name[:5]) for p in made)
    assert numbers == list(range(8))


@pytest.mark.parametrize("desc", ["", "a/b", "../up", "-flag", "sp ace", 3])
def test_rejects_bad_desc(tmp_path, desc):
    with pytest.raises(ValueError, match="desc"):
        make_run_dir(tmp_path, desc)


def test_find_latest_state(tmp_path):
    assert find_latest_state(tmp_path) is None
    for name in ["training-state-000010.pt", "training-state-000200.pt", "training-state-000030.pt",
                 ".training-state-000900.pt.abc.tmp", "network-snapshot-000999.safetensors"]:
        (tmp_path / name).write_bytes(b"")
    assert find_latest_state(tmp_path) == tmp_path / "training-state-000200.pt"
    with pytest.raises(ValueError, match="run_dir"):
        find_latest_state(tmp_path / "missing")


def test_a_file_as_run_root_is_a_value_error(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(ValueError, match=r"run\.run_dir: expected a folder .* found a file at .*runs"):
        make_run_dir(tmp_path / "runs", "x")


def test_clean_temporaries_removes_only_atomic_write_leftovers(tmp_path):
    stale = [tmp_path / ".training-state-000001.pt.k3j_9x0a.tmp", tmp_path / ".stats.jsonl.abcdefgh.tmp"]
    kept = [tmp_path / "training-state-000001.pt", tmp_path / "notes.tmp", tmp_path / ".hidden",
            tmp_path / ".report.docx.abcdefgh.tmp"]  # someone else's temporary
    for path in stale + kept:
        path.write_bytes(b"x")
    assert rundir.clean_temporaries(tmp_path) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert rundir.clean_temporaries(tmp_path / "missing") == []


def test_clean_temporaries_spares_a_folder_a_live_run_holds(tmp_path):
    tmp = tmp_path / ".training-state-000001.pt.abcdefgh.tmp"
    tmp.write_bytes(b"being written")
    with rundir.hold_run_dir(tmp_path):
        assert rundir.clean_temporaries(tmp_path) == [] and tmp.exists()
    assert rundir.clean_temporaries(tmp_path) == [tmp] and not tmp.exists()


def test_a_read_only_run_root_is_a_value_error(tmp_path, monkeypatch):
    real = rundir.Path.mkdir

    def refuse(self, *args, exist_ok=False, **kwargs):
        if not exist_ok:  # the run folder itself, inside a root that exists
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, exist_ok=exist_ok, **kwargs)

    monkeypatch.setattr(rundir.Path, "mkdir", refuse)
    with pytest.raises(ValueError, match=r"run\.run_dir: expected a folder to create run folders in, .*Permission"):
        make_run_dir(tmp_path / "runs", "x")
