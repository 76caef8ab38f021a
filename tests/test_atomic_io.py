"""Atomic writes: the target is replaced only when writing finished; a failure leaves the old file untouched."""

from __future__ import annotations

import json

import pytest

from geo_r.atomic_io import atomic_write, write_json_atomic


def test_success_replaces_and_failure_keeps_old(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write('{"half": ')
        raise RuntimeError("crash in the middle")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_nan_refused_when_asked(tmp_path):
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "m.json", {"x": float("nan")}, allow_nan=False)
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_and_folders_follow_the_umask(tmp_path, umask):
    """mkstemp alone makes 0600 files: colleagues on a shared cluster could not read metrics.json."""
    import os
    import stat

    from geo_r.atomic_io import current_umask, make_temp_dir

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json_atomic(tmp_path / "metrics.json", {"a": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        folder = make_temp_dir(tmp_path / "sub", ".tmp-")
        (tmp_path / "plain_dir").mkdir()
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask == stat.S_IMODE((tmp_path / "plain_dir").stat().st_mode)
