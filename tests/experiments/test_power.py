"""Split-level tests: backbones as replicates, Holm across splits, the sign count, the MDE, the machines named."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from moe_mlora.experiments.power import Claim, minimum_detectable_effect, split_tests, split_tests_markdown

CLAIM = (Claim("A beats B", "a", "b"),)


def _records(deltas: dict[str, list[list[float]]], numerics_a: str = "cpu X", numerics_b: str = "cpu X") -> pd.DataFrame:
    """deltas[split][backbone][seed]: arm a's WAUC minus arm b's (b at 80 points)."""
    rows = []
    for split, backbones in deltas.items():
        for index, seeds in enumerate(backbones):
            for seed, delta in enumerate(seeds, start=1):
                common = dict(status="ok", k=1, split=split, model=f"m{index}", seed=seed)
                rows += [dict(common, arm="b", wauc=80.0, numerics=numerics_b),
                         dict(common, arm="a", wauc=80.0 + delta, numerics=numerics_a)]
    return pd.DataFrame(rows)


def test_the_primary_test_takes_backbone_means_as_its_replicates_and_holm_runs_across_splits():
    rng = np.random.default_rng(0)
    age = [[0.2 + b + s for s in rng.normal(0, 0.05, 3)] for b in rng.normal(0, 0.1, 8)]
    gender = [[b + s for s in rng.normal(0, 0.05, 3)] for b in rng.normal(0, 0.1, 8)]
    tests = {t.split: t for t in split_tests(_records({"age": age, "gender": gender}), CLAIM)}
    means = [np.mean(b) for b in age]
    assert tests["age"].backbones == 8 and tests["age"].pairs == 24
    assert tests["age"].p_value == pytest.approx(stats.ttest_1samp(means, 0).pvalue)
    assert tests["age"].p_holm == pytest.approx(min(1, 2 * min(tests["age"].p_value, tests["gender"].p_value))
                                                if tests["age"].p_value < tests["gender"].p_value else
                                                max(tests["age"].p_value, 2 * tests["gender"].p_value))
    assert tests["age"].positive == sum(d > 0 for b in age for d in b)
    assert tests["age"].mde == pytest.approx(minimum_detectable_effect(np.std(means, ddof=1), 8, 0.05 / 2))
    assert tests["age"].p_holm < 0.05 and tests["age"].machines == ""
    text = split_tests_markdown(list(tests.values()))
    assert '- age: "A beats B" holds' in text and '- gender: "A beats B" is not shown' in text


def test_the_minimum_detectable_effect_is_the_textbook_t_approximation():
    sd, n, alpha = 0.3, 8, 0.025
    expected = (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n)
    assert minimum_detectable_effect(sd, n, alpha) == pytest.approx(expected)
    assert minimum_detectable_effect(0.3, 1, alpha) is None and minimum_detectable_effect(0.0, 8, alpha) is None
    # more seeds or backbones detect smaller effects; a stricter level larger ones
    assert minimum_detectable_effect(sd, 24, alpha) < minimum_detectable_effect(sd, 8, alpha)
    assert minimum_detectable_effect(sd, 8, alpha / 24) > minimum_detectable_effect(sd, 8, alpha)


def test_a_delta_whose_sides_ran_on_different_machines_says_so():
    records = _records({"age": [[0.1, 0.2, 0.3]] * 4}, numerics_a="torch 2.13, Intel Xeon", numerics_b="torch 2.13, AMD EPYC")
    (test,) = split_tests(records, CLAIM)
    assert "Intel Xeon" in test.machines and "AMD EPYC" in test.machines
    assert "The sides ran on different machines" in split_tests_markdown([test])


def test_a_table_names_every_cell_whose_seeds_ran_on_different_machines():
    from moe_mlora.experiments.report import Table1, mixed_machine_cells

    rows = [dict(conditions="c", arm="base", model="deepfm", split="s", seed=seed,
                 numerics="AMD" if seed == 1 else "Xeon") for seed in (1, 2, 3)]
    rows += [dict(conditions="c", arm="base", model="dcn", split="s", seed=seed, numerics="Xeon") for seed in (1, 2, 3)]
    table = Table1(["s"], ["deepfm", "dcn"], ["base"], [], conditions="c")
    text = mixed_machine_cells(pd.DataFrame(rows), table)
    assert text.startswith("**1 cell(s) of this table mix machines**")
    assert "s × Base × deepfm (seeds [1] on AMD; seeds [2, 3] on Xeon)" in text and "dcn" not in text
    assert mixed_machine_cells(pd.DataFrame(rows[3:]), table) == ""


def test_the_size_table_gives_each_methods_parameters_its_multiple_of_base_and_its_own_per_domain():
    from moe_mlora.experiments.report import parameter_markdown

    rows = [dict(arm="base", split="s", model="dnn", parameters=1000, n_domains=4),
            dict(arm="star", split="s", model="dnn", parameters=3000, n_domains=4)]
    text = parameter_markdown(pd.DataFrame(rows), ["base", "star"])
    assert "| Base | s | 1,000 (1.00× Base) |" in text
    assert "| STAR | s | 3,000 (3.00× Base; 500 per domain) |" in text  # (3000 - 1000) / 4


def test_base_without_the_domain_field_is_an_arm_of_its_own_compared_with_base():
    from dataclasses import replace

    from moe_mlora.experiments.grids import table1_configs
    from moe_mlora.experiments.report import default_comparisons
    from moe_mlora.training.config import TrainConfig

    configs = table1_configs(["movielens-100k:gender"], ["deepfm"], [1], TrainConfig(), methods=["base-without-domain"])
    without = [c for c in configs if not c.data.domain_as_feature]
    assert len(without) == 1 and without[0].arm == "base[no-domain-field]" and without[0].approach.approach == "base"
    assert "no-domain-field" in without[0].label and without[0].key() != replace(without[0], data=replace(
        without[0].data, domain_as_feature=True)).key()
    assert ("base[no-domain-field]", "base") in default_comparisons(["base", "mlora", "moe-mlora", "base[no-domain-field]"])


def test_base_without_the_domain_field_survives_a_config_files_data_section():
    from moe_mlora.experiments.grids import table1_configs, with_config_file
    from moe_mlora.training.config import TrainConfig

    configs = table1_configs(["movielens-100k:gender"], ["deepfm"], [1], TrainConfig(), methods=["base-without-domain"])
    given = with_config_file(configs, {"data": {"dataset": "movielens-100k", "split_by": "age"}}, "run.yaml")
    assert sorted(c.arm for c in given) == ["base", "base[no-domain-field]", "mlora", "moe-mlora"]
    assert all(c.data.split_by == "age" for c in given)


def test_the_patience_sample_pairs_runs_that_differ_only_in_patience():
    from moe_mlora.experiments.report import patience_markdown

    rows = []
    for seed, (short, long) in enumerate([(80.0, 80.0), (80.0, 80.5), (81.0, 80.7)], start=1):
        common = dict(split="s", model="dnn", arm="base", seed=seed)
        rows += [dict(common, patience=3, conditions="c", wauc=short, epochs=10),
                 dict(common, patience=10, conditions="c, patience 10", wauc=long, epochs=17)]
    rows.append(dict(split="s", model="dnn", arm="base", seed=9, patience=10, conditions="c, patience 10", wauc=1.0,
                     epochs=1))  # no twin: not a pair
    text = patience_markdown(pd.DataFrame(rows))
    assert "| Base | 3 | 2 | +0.067 | -0.300 … +0.500 | 10.0 → 17.0 |" in text
    assert "Over all 3 pairs the longer patience changed the test WAUC in 2, by +0.067 points" in text


def test_the_one_paired_test_says_untested_for_one_pair_or_a_constant_shift_and_p_1_for_no_difference():
    from scipy import stats

    from moe_mlora.experiments.statistics import paired_t

    assert paired_t([0.3]) is None
    assert paired_t([0.2, 0.2, 0.2]) is None  # t undefined: no spread around a non-zero shift
    assert paired_t([0.0, 0.0, 0.0]) == 1.0
    assert paired_t([0.1, 0.3, 0.2, float("nan")]) == pytest.approx(stats.ttest_1samp([0.1, 0.3, 0.2], 0).pvalue)
