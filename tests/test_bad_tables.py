"""The test suite's table of bad tables and faulty files: each ends in exit status 2 and one line naming the
file (and the line or column where one is to blame), and nothing is written."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from moe_mlora.cli import app

HEADER = "user,item,region,clicked\n"
ROWS = "".join(f"u{i % 7},i{i % 5},{'ab'[i % 2]},{i % 3 == 0:d}\n" for i in range(60))


def text(content: str | bytes):
    def write(path):
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return write


def parquet_with_list_column(path):
    table = pa.table({"user": [["u1", "u2"]] * 4, "item": ["i1"] * 4, "region": ["a", "b"] * 2, "clicked": [0, 1] * 2})
    pq.write_table(table, path)
    return path


TABLES = [
    ("trailing-delimiter.csv", text(HEADER + ROWS.replace("\n", ",\n")), "line 2: malformed row (Expected 4 columns, got 5"),
    ("short-row.csv", text(HEADER + ROWS + "u1,i1,a\n"), "line 62: malformed row (Expected 4 columns, got 3"),
    ("long-row.csv", text(HEADER + "u1,i1,a,1,surplus\n" + ROWS), "line 2: malformed row (Expected 4 columns, got 5"),
    ("latin1.csv", text(HEADER.encode() + ROWS.encode() + "Zo\u00eb,i1,a,1\n".encode("latin-1")), "line 62: not UTF-8 text"),
    ("binary.csv", text(bytes(range(256)) * 4), "binary data (a NUL byte at byte 0), not a text table"),
    ("empty.csv", text(""), "file is empty"),
    ("header-only.csv", text(HEADER), "the table has no rows"),
    ("no-clicks.csv", text(HEADER + "".join(f"u{i},i{i},a,0\n" for i in range(30))), "every row has label 0"),
    ("bad-label.csv", text(HEADER + "u1,i1,a,yes\n" + ROWS), "line 2, column 'clicked': label must be 0 or 1"),
    ("empty-domain.csv", text(HEADER + ROWS + "u1,i1,,1\n"), "line 62, column 'region': empty domain"),
    ("list-column.parquet", parquet_with_list_column, "column 'user': a list<element: string> column cannot be"),
    ("not-parquet.parquet", text("this is not parquet"), "not a readable Parquet file"),
    ("table.xlsx", text("whatever"), "unsupported table format '.xlsx'"),
]


@pytest.mark.parametrize("name, write, message", TABLES, ids=[name for name, _, _ in TABLES])
def test_a_bad_table_is_one_line_naming_where_and_writes_nothing(name, write, message, tmp_path):
    path = write(tmp_path / name)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "--dataset", "table", "--table-path", str(path), "--split-by", "region",
                                      "--features", "user,item", "--label-column", "clicked", "--runs-dir", str(runs),
                                      "--max-epochs", "1", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert message in result.output and name in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not runs.exists()


def test_a_folder_given_as_the_table_is_named_as_a_folder(tmp_path):
    result = CliRunner().invoke(app, ["train", "--dataset", "table", "--table-path", str(tmp_path), "--split-by", "region",
                                      "--features", "user"])
    assert result.exit_code == 2 and "is a folder, not a table file" in result.output


def test_a_runs_folder_that_cannot_be_written_is_found_before_training(tmp_path):
    (tmp_path / "clicks.csv").write_text(HEADER + ROWS)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["train", "--dataset", "table", "--table-path", str(tmp_path / "clicks.csv"),
                                      "--split-by", "region", "--features", "user,item", "--label-column", "clicked",
                                      "--runs-dir", str(blocker / "runs"), "--no-progress"])
    assert result.exit_code == 2 and "cannot write there" in result.output, result.output
    assert "epoch" not in result.output  # refused before any training


def test_a_domain_value_or_column_with_a_slash_stays_one_folder_deep(tmp_path):
    frame = pd.DataFrame({"user": [f"u{i % 9}" for i in range(80)], "item": [f"i{i % 4}" for i in range(80)],
                          "shop/theme": ["a/b", "c"] * 40, "clicked": [i % 3 == 0 for i in range(80)]})
    frame.astype({"clicked": int}).to_csv(tmp_path / "t.csv", index=False)
    result = CliRunner().invoke(app, ["train", "--dataset", "table", "--table-path", str(tmp_path / "t.csv"),
                                      "--split-by", "shop/theme", "--features", "user,item", "--label-column", "clicked",
                                      "--runs-dir", str(tmp_path / "runs"), "--max-epochs", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / "result.json").is_file() and "shop_theme" in folder.name
    report = CliRunner().invoke(app, ["report", str(tmp_path / "runs")])
    assert report.exit_code == 0, report.output


def test_data_stats_shows_the_domain_warnings_train_shows(tmp_path):
    rows = HEADER + ROWS + "u1,i1,tiny,1\nu2,i2,tiny,1\n"
    (tmp_path / "t.csv").write_text(rows)
    result = CliRunner().invoke(app, ["data", "stats", "table", "--table-path", str(tmp_path / "t.csv"), "--split-by",
                                      "region", "--features", "user,item", "--label-column", "clicked"])
    assert result.exit_code == 0, result.output
    assert "domain 'tiny' has only 2 rows" in result.output and "single label class" in result.output


def test_help_and_errors_keep_square_brackets():
    shown = CliRunner().invoke(app, ["reproduce", "table1", "--help"], terminal_width=200)
    assert "moe-mlora[ray]" in shown.output
    assert "moe-mlora[onnx]" in CliRunner().invoke(app, ["export", "--help"], terminal_width=200).output
