import json
import os
import stat
import threading

import pandas as pd
import pytest

from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.errors import DataError
from moe_mlora.experiments.records import write_json


def test_concurrent_writers_of_one_record_never_collide(tmp_path):
    target = tmp_path / "run" / "result.json"
    errors = []

    def write(index):
        try:
            for repeat in range(50):
                write_json(target, {"writer": index, "repeat": repeat})
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and set(json.loads(target.read_text())) == {"writer", "repeat"}
    assert not list(target.parent.glob("*.tmp")) and not list(target.parent.glob(".*"))


def test_written_files_get_the_usual_permissions_not_0600(tmp_path):
    mask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "result.json", {"a": 1})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_table_without_a_single_click_is_refused_before_training(tmp_path):
    table = tmp_path / "rows.csv"
    pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [5, 6, 7, 8], "scenario": ["a", "a", "b", "b"],
                  "label": [0, 0, 0, 0]}).to_csv(table, index=False)
    with pytest.raises(DataError, match="every row has label 0"):
        prepare_dataset(DatasetConfig("table", "scenario", table_path=str(table)))
