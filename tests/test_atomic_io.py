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
