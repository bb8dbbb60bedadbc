import pandas as pd
import pytest
from typer.testing import CliRunner

from moe_mlora.cli import app
from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.data.tabular import load_table
from moe_mlora.errors import DataError


def write_csv(path, rows, header="user,item,scenario,clicked"):
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows))
    return path


GOOD_ROWS = [f"u{i % 7},i{i % 11},{'ab'[i % 2]},{int(i % 3 == 0)}" for i in range(200)]


def test_csv_table_loads_with_named_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv", GOOD_ROWS)
    table = load_table(path, features=("user", "item"), label="clicked", domain="scenario")
    assert len(table.frame) == 200 and table.domain_order == ["a", "b"]


def test_parquet_table_loads_like_csv(tmp_path):
    frame = pd.read_csv(write_csv(tmp_path / "t.csv", GOOD_ROWS))
    frame.to_parquet(tmp_path / "t.parquet")
    table = load_table(tmp_path / "t.parquet", features=("user", "item"), label="clicked", domain="scenario")
    assert table.frame["label"].sum() == frame["clicked"].sum()


def test_unknown_column_is_named(tmp_path):
    path = write_csv(tmp_path / "t.csv", GOOD_ROWS)
    with pytest.raises(DataError, match=r"t\.csv: unknown column\(s\) \['shop'\]"):
        load_table(path, features=("user", "shop"), label="clicked", domain="scenario")


def test_label_other_than_0_or_1_names_line_and_column(tmp_path):
    rows = list(GOOD_ROWS)
    rows[4] = "u1,i1,a,2"
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=r"t\.csv, line 6, column 'clicked': label must be 0 or 1, got '2'"):
        load_table(path, features=("user", "item"), label="clicked", domain="scenario")


def test_empty_domain_names_line(tmp_path):
    rows = list(GOOD_ROWS)
    rows[9] = "u1,i1,,1"
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=r"t\.csv, line 11, column 'scenario': empty domain"):
        load_table(path, features=("user", "item"), label="clicked", domain="scenario")


def test_malformed_csv_row_names_line(tmp_path):
    rows = list(GOOD_ROWS)
    rows[2] = "u1,i1,a,1,extra"
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=r"t\.csv, line 4: malformed row"):
        load_table(path, features=("user", "item"), label="clicked", domain="scenario")


def test_small_or_single_class_domain_is_reported(tmp_path):
    rows = GOOD_ROWS + ["u1,i1,c,1", "u2,i2,c,1"]
    path = write_csv(tmp_path / "t.csv", rows)
    dataset = prepare_dataset(DatasetConfig("table", "scenario", features=("user", "item"), table_path=str(path), label_column="clicked"))
    assert any("domain 'c' has only 2 rows" in note for note in dataset.notes)
    assert any("domain 'c' has a single label class" in note for note in dataset.notes)


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path):
    rows = list(GOOD_ROWS)
    rows[4] = "u1,i1,a,yes"
    path = write_csv(tmp_path / "t.csv", rows)
    result = CliRunner().invoke(app, ["data", "stats", "table", "--table-path", str(path), "--split-by", "scenario",
                                      "--features", "user,item", "--label-column", "clicked"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "line 6, column 'clicked': label must be 0 or 1" in result.output
