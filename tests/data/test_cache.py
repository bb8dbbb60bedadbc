"""The encoded-data cache is a shortcut only: keyed on the raw files, rebuilt when damaged, skipped when unwritable."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.data.prepare import _cache_path
from moe_mlora.errors import DataError


@pytest.fixture
def ml100k_copy(tmp_path, real_data_dir):
    data = tmp_path / "data"
    shutil.copytree(real_data_dir / "ml-100k", data / "ml-100k")
    return data


CONFIG = DatasetConfig("movielens-100k", "gender")


def test_a_corrupt_cache_file_is_rebuilt_not_fatal(ml100k_copy, tmp_path, caplog):
    cache = tmp_path / "cache"
    first = prepare_dataset(CONFIG, ml100k_copy, cache)
    path = _cache_path(CONFIG, ml100k_copy, cache)
    path.write_bytes(b"truncated")
    again = prepare_dataset(CONFIG, ml100k_copy, cache)
    assert np.array_equal(again.codes, first.codes) and "unreadable cache file" in caplog.text
    assert path.stat().st_size > 1000  # rewritten whole


def test_an_unwritable_cache_is_a_warning_and_the_data_still_loads(ml100k_copy, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    dataset = prepare_dataset(CONFIG, ml100k_copy, blocker / "cache")
    assert len(dataset.labels) == 100_000 and "cannot write the cache" in caplog.text


def test_changed_or_missing_raw_files_are_never_hidden_by_a_warm_cache(ml100k_copy, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    prepare_dataset(CONFIG, ml100k_copy, cache)
    ratings = ml100k_copy / "ml-100k" / "u.data"
    lines = ratings.read_text().splitlines(keepends=True)
    ratings.write_text("".join(lines[:-1]) + "oops\n")  # a damaged last line
    os.utime(ratings, ns=(1, 1))
    with pytest.raises(DataError, match=r"u\.data: checksum mismatch"):
        prepare_dataset(CONFIG, ml100k_copy, cache)
    from moe_mlora.data import download

    monkeypatch.setattr(download, "_fetch", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DataError, match=r"ml-100k \(missing: u.data, u.user, u.item\)"):
        prepare_dataset(CONFIG, tmp_path / "empty-data-dir", cache)
