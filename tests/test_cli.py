import json
import os

import pytest

from typer.testing import CliRunner

from moe_mlora.cli import app


def test_stats_for_occupation_prints_21_domains_summing_to_100k(real_data_dir):
    result = CliRunner().invoke(app, ["data", "stats", "movielens-100k", "--split-by", "occupation", "--json",
                                      "--data-dir", str(real_data_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    domains = [entry for entry in report["domains"] if entry["domain"] != "ALL"]
    assert len(domains) == 21
    assert sum(entry["rows"] for entry in domains) == 100_000


def test_stats_table_lists_every_domain(real_data_dir):
    result = CliRunner().invoke(app, ["data", "stats", "movielens-100k", "--split-by", "age", "--data-dir", str(real_data_dir)])
    assert result.exit_code == 0, result.output
    for group in ("<18", "18-24", "56+", "ALL"):
        assert group in result.output


def test_unknown_dataset_is_one_line_error():
    result = CliRunner().invoke(app, ["data", "stats", "netflix"])
    assert result.exit_code == 2
    assert "unknown dataset 'netflix'" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs an OS with CPU affinity calls (Linux)")
def test_a_run_sizes_its_threads_by_the_cores_it_may_use_not_the_machines(every_core):
    """Under taskset, a container's cpuset or a pinned test worker, os.cpu_count() still counts the machine."""
    from moe_mlora.cli import default_threads

    own = os.sched_getaffinity(0)
    if len(own) < 2:
        pytest.skip("this machine lets the tests use only one core")
    try:
        os.sched_setaffinity(0, {min(own)})
        assert default_threads() == 1 and os.cpu_count() >= 2
    finally:
        os.sched_setaffinity(0, own)
    assert default_threads() == len(own)
