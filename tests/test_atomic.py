"""The one atomic JSON writer: whole files, the previous one kept when asked, nothing
left behind on failure, and every step made durable (file and folder fsync'd)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from prompting import atomic


def test_writes_replaces_and_keeps_the_previous_file(tmp_path):
    path = str(tmp_path / "sub" / "state.json")  # the folder is made
    atomic.write_json(path, {"step": 1})
    atomic.write_json(path, {"step": 2}, keep_previous=True)
    assert json.loads(open(path).read()) == {"step": 2}
    assert json.loads(open(path + ".bak").read()) == {"step": 1}
    atomic.write_json(path, {"step": 3}, indent=2)
    assert open(path).read() == '{\n  "step": 3\n}'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the keys file holds key hashes
    assert sorted(os.listdir(tmp_path / "sub")) == ["state.json", "state.json.bak"]


def test_a_failed_write_leaves_the_file_and_no_temp(tmp_path):
    path = str(tmp_path / "state.json")
    atomic.write_json(path, {"step": 1})
    with pytest.raises(TypeError):
        atomic.write_json(path, {"step": object()}, keep_previous=True)
    assert json.loads(open(path).read()) == {"step": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_the_file_and_then_its_folder_are_fsynced_after_the_data(tmp_path, monkeypatch):
    """Without the folder's fsync the rename may not survive a power cut; without the
    file's, the new name may point at blocks never written."""
    done = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        done.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src, dst):
        done.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic.write_json(str(tmp_path / "chain.json"), {"neurons": []})
    assert done == ["file", "replace", "dir"]


def test_the_keys_file_goes_through_the_one_writer(tmp_path, monkeypatch):
    """``organic/keys.py`` had a writer of its own (a ``.tmp`` file renamed, nothing
    fsync'd): a key added when the disk failed replaced the file anyway. Now a write that
    cannot reach the disk leaves the keys as they were, and no temp file."""
    from prompting.organic import keys

    path = str(tmp_path / "keys.json")
    alice = keys.ApiKey("alice", "a" * 64, 60)
    keys.write_keys(path, [alice])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds key hashes

    def disk_gone(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(atomic.os, "fsync", disk_gone)
    with pytest.raises(OSError, match="disk gone"):
        keys.write_keys(path, [alice, keys.ApiKey("bob", "b" * 64, 60)])
    assert list(keys.read_keys(path).values()) == [alice]
    assert os.listdir(tmp_path) == ["keys.json"]
