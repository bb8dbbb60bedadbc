import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from moe_mlora.experiments.report import (
    PAPER_TABLE1, ablation_table, build_table1, markdown_table, method_deltas, methods_section, other_methods,
    table1_markdown,
)
from moe_mlora.experiments.statistics import holm, summarise
from moe_mlora.models.registry import PAPER_MODELS

VS_MLORA, VS_BASE = ("moe-mlora", "mlora"), ("moe-mlora", "base")


def paper_records() -> pd.DataFrame:
    """The paper's Table 1 as run records (one seed): ML splits under movielens-1m, Taobao under taobao."""
    rows = []
    for key, approaches in PAPER_TABLE1.items():
        dataset = "movielens-1m" if key.startswith("movielens") else "taobao"
        split = key.replace("movielens", "movielens-1m")
        for name, values in approaches.items():
            approach = {"Base": "base", "MLoRA": "mlora", "MoE-MLoRA": "moe-mlora"}[name]
            for model, value in zip(PAPER_MODELS, values):
                rows.append({"split": split, "dataset": dataset, "model": model, "approach": approach, "k": 1,
                             "seed": 1, "status": "ok", "wauc": value})
    return pd.DataFrame(rows)


def test_delta_and_avg_delta_reproduce_the_papers_own_rows():
    table = build_table1(paper_records())
    # The paper's Δ rows (rounded to 0.01).
    assert table.deltas[("movielens-1m-gender", VS_MLORA, "wdl")].mean == pytest.approx(0.05, abs=1e-9)
    assert table.deltas[("taobao-theme-10", VS_MLORA, "autoint")].mean == pytest.approx(2.80, abs=1e-9)
    assert table.row_average[("movielens-1m-occupation", VS_MLORA)] == pytest.approx(0.11, abs=0.006)
    assert table.row_average[("taobao-theme-20", VS_MLORA)] == pytest.approx(1.45, abs=0.006)
    # The paper's Avg(Δ) row: each dataset's splits averaged, then the two datasets.
    paper_avg_delta = [0.73, 0.21, 0.88, 0.77, 1.12, 0.13, 1.22, 0.54]
    for model, expected in zip(PAPER_MODELS, paper_avg_delta):
        assert table.avg_delta[(VS_MLORA, model)] == pytest.approx(expected, abs=0.006), model
    assert table.overall_avg_delta[VS_MLORA] == pytest.approx(0.70, abs=0.006)
    # Against Base as well (the paper reports only the MLoRA comparison): WDL on gender, 80.25 - 80.25.
    assert table.deltas[("movielens-1m-gender", VS_BASE, "wdl")].mean == pytest.approx(0.0, abs=1e-9)
    # The Avg column of a row is the mean over the eight models.
    assert table.row_average[("movielens-1m-gender", "base")] == pytest.approx(80.30, abs=0.006)


def test_avg_delta_weights_datasets_not_splits():
    records = paper_records()
    table = build_table1(records)
    naive = np.mean([table.deltas[(s, VS_MLORA, "wdl")].mean for s in table.splits])  # every split equal
    assert not math.isclose(naive, table.avg_delta[(VS_MLORA, "wdl")], abs_tol=1e-3)


def test_mean_and_95_percent_interval_over_seeds():
    cell = summarise(np.array([80.0, 81.0, 82.5]))
    half = stats.t.ppf(0.975, 2) * np.std([80.0, 81.0, 82.5], ddof=1) / math.sqrt(3)
    assert cell.mean == pytest.approx(81.1666666) and cell.ci95 == pytest.approx(half) and cell.n == 3
    assert summarise(np.array([80.0])).ci95 is None


def test_delta_is_paired_by_seed_with_a_t_test():
    rows = []
    for seed, (mlora, moe) in enumerate([(80.0, 80.5), (81.0, 81.2), (79.0, 79.9)], start=1):
        rows += [{"split": "s", "dataset": "d", "model": "wdl", "approach": "mlora", "k": 1, "seed": seed, "status": "ok", "wauc": mlora},
                 {"split": "s", "dataset": "d", "model": "wdl", "approach": "moe-mlora", "k": 1, "seed": seed, "status": "ok", "wauc": moe},
                 {"split": "s", "dataset": "d", "model": "wdl", "approach": "base", "k": 1, "seed": seed, "status": "ok", "wauc": 80.0}]
    table = build_table1(pd.DataFrame(rows))
    delta = table.deltas[("s", VS_MLORA, "wdl")]
    assert delta.mean == pytest.approx(np.mean([0.5, 0.2, 0.9]))
    p_mlora = stats.ttest_rel([80.5, 81.2, 79.9], [80.0, 81.0, 79.0]).pvalue
    p_base = stats.ttest_rel([80.5, 81.2, 79.9], [80.0, 80.0, 80.0]).pvalue
    assert delta.p_value == pytest.approx(p_mlora)
    assert table.comparisons == [VS_BASE, VS_MLORA] and table.tests == 2
    assert table.primary == VS_MLORA
    assert delta.p_holm == pytest.approx(p_mlora)  # its family (MoE-MLoRA − MLoRA) holds this one cell
    assert delta.p_holm_pooled == pytest.approx(holm([p_base, p_mlora])[1])  # secondary: pooled over both


def _rows(model, seed, values, **extra):
    return [{"split": "s", "dataset": "d", "model": model, "approach": arm, "arm": arm, "k": 1, "seed": seed,
             "status": "ok", "wauc": value, **extra} for arm, value in values.items()]


def test_the_primary_family_is_corrected_over_its_own_cells_only():
    rng = np.random.default_rng(0)
    rows = []
    for model in ("wdl", "dcn", "nfm"):
        for seed in (1, 2, 3):
            base = 80 + rng.normal()
            rows += _rows(model, seed, {"base": base, "mlora": base - 0.1 + rng.normal(0, 0.05),
                                        "moe-mlora": base + rng.normal(0, 0.05)})
    table = build_table1(pd.DataFrame(rows))
    family = [table.deltas[("s", VS_MLORA, m)] for m in table.models]
    assert [c.p_holm for c in family] == pytest.approx(holm([c.p_value for c in family]))
    every = [table.deltas[("s", c, m)] for c in table.comparisons for m in table.models]
    assert [c.p_holm_pooled for c in every] == pytest.approx(holm([c.p_value for c in every]))
    assert table.family_tests(VS_MLORA) == 3 and table.tests == 6


def test_runs_under_other_conditions_are_other_cells_never_extra_seeds():
    rows = []
    for seed in (1, 2):
        rows += _rows("wdl", seed, {"base": 80.0 + seed, "mlora": 80.0, "moe-mlora": 80.0},
                      conditions="shuffled batches, selection by wauc, 1 thread")
        rows += _rows("wdl", seed, {"base": 70.0, "mlora": 70.0, "moe-mlora": 70.0},
                      conditions="shuffled batches, selection by wauc, 2 threads")
    records = pd.DataFrame(rows)
    main = build_table1(records)
    assert main.cells[("s", "base", "wdl")].n == 2 and main.cells[("s", "base", "wdl")].mean == pytest.approx(81.5)
    other = build_table1(records, conditions="shuffled batches, selection by wauc, 2 threads")
    assert other.cells[("s", "base", "wdl")].mean == pytest.approx(70.0)


def test_the_gate_diagnostics_keep_each_conditions_runs_apart():
    from moe_mlora.experiments.report import DEFAULT_CONDITIONS, diagnostics_frame

    paper_conditions = "by-domain batches, selection by mean-auc, 1 thread"
    rows = []
    for seed in (1, 2):
        for conditions, kept in ((DEFAULT_CONDITIONS, 1.0), (paper_conditions, 0.0)):
            rows += [{**row, "own_weight": 0.5, "experts_kept_start": kept, "gate_chosen_epoch": 0}
                     for row in _rows("wdl", seed, {"base": 80.0, "moe-mlora": 80.0}, conditions=conditions)]
    records = pd.DataFrame(rows)
    frame = diagnostics_frame(records)
    assert frame["experts_kept_start"].to_dict() == {"s · MoE-MLoRA": 1.0, f"s · MoE-MLoRA · {paper_conditions}": 0.0}
    assert frame["runs"].tolist() == [2, 2]
    assert diagnostics_frame(records, DEFAULT_CONDITIONS).index.tolist() == ["s · MoE-MLoRA"]


def test_every_setting_that_can_change_the_numbers_separates_conditions_but_the_seed():
    from dataclasses import replace

    from moe_mlora.run_config import RunConfig
    from moe_mlora.experiments.report import DEFAULT_CONDITIONS, conditions_label
    from moe_mlora.models import ModelConfig
    from moe_mlora.training.config import TrainConfig

    base = RunConfig()
    assert conditions_label(base) == conditions_label(base.with_seed(7)) == DEFAULT_CONDITIONS
    assert conditions_label(replace(base, train=TrainConfig(progress=False, device="cuda"))) == DEFAULT_CONDITIONS
    labels = {conditions_label(replace(base, train=TrainConfig(weight_decay=1e-5))),
              conditions_label(replace(base, train=TrainConfig(learning_rate=0.01))),
              conditions_label(replace(base, train=TrainConfig(precision="bf16"))),
              conditions_label(replace(base, model_config=ModelConfig(dnn_hidden=(64,)))), DEFAULT_CONDITIONS}
    assert len(labels) == 5 and f"{DEFAULT_CONDITIONS}, weight decay 1e-05" in labels and \
        f"{DEFAULT_CONDITIONS}, dnn hidden [64]" in labels


def test_figure2_compares_every_k_on_the_same_seeds_with_paired_deltas():
    from moe_mlora.experiments.report import experts_frame

    rows = []
    for seed in (1, 2, 3, 4, 5):
        rows.append({"split": "g", "model": "wdl", "arm": "moe-mlora", "k": 1, "seed": seed, "status": "ok",
                     "wauc": 80.0 + seed, "n_domains": 2})
    for seed in (1, 2, 3):
        rows.append({"split": "g", "model": "wdl", "arm": "moe-mlora", "k": 2, "seed": seed, "status": "ok",
                     "wauc": 80.1 + seed, "n_domains": 2})
    frame = experts_frame(pd.DataFrame(rows)).set_index("k")
    assert frame.loc[1, "wauc"] == pytest.approx(82.0)  # seeds 1-3 only, not 1-5
    assert frame.loc[2, "delta"] == pytest.approx(0.1) and frame.loc[1, "delta"] == pytest.approx(0.0)
    assert set(frame.seed_list) == {"1,2,3"}


def test_a_backbone_the_paper_does_not_have_gets_a_column_but_no_paper_number():
    from moe_mlora.experiments.report import paper_comparison_markdown

    rows = []
    for model in ("wdl", "zzz-ninth"):
        rows += _rows(model, 1, {"base": 80.0, "mlora": 80.0, "moe-mlora": 80.0})
    records = pd.DataFrame(rows).assign(split="movielens-1m-gender", dataset="movielens-1m")
    table = build_table1(records)
    assert table.models == ["wdl", "zzz-ninth"]
    text = paper_comparison_markdown(table)
    assert "| | paper | 80.25 | 80.25 |" in text and "zzz-ninth" not in text


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 caps at 1


def test_variant_arms_join_table1_only_where_every_model_has_them_and_lead_the_ablation():
    rows = []
    for seed in (1, 2, 3):
        for model in ("wdl", "dcn"):
            for arm, value in (("base", 80.0), ("mlora", 79.5), ("moe-mlora", 80.1), ("moe-mlora[authors-code]", 80.4)):
                if arm.endswith("]") and model == "wdl":
                    continue
                rows.append({"split": "s", "dataset": "d", "model": model, "approach": arm.split("[")[0], "arm": arm,
                             "k": 1, "seed": seed, "status": "ok", "wauc": value + seed / 10, "valid_wauc": value})
    records = pd.DataFrame(rows)
    assert build_table1(records).arms == ["base", "mlora", "moe-mlora"]
    ablation = ablation_table(records)
    assert ablation.models == ["dcn"] and ablation.arms == ["base", "moe-mlora", "moe-mlora[authors-code]"]
    assert ablation.deltas[("s", ("moe-mlora[authors-code]", "base"), "dcn")].mean == pytest.approx(0.4)
    assert ablation.valid_average["moe-mlora[authors-code]"] == pytest.approx(80.4) and ablation.valid_cells == 3
    # The ablation has no MLoRA arm: its note names the family that does decide it, not the paper's Δ.
    from moe_mlora.experiments.report import statistics_note

    assert "is Δ MoE-MLoRA − Base, as the table has no MLoRA arm" in statistics_note(ablation)
    assert "is the paper's own Δ MoE-MLoRA − MLoRA" in statistics_note(build_table1(records))
    assert "is none here" in statistics_note(build_table1(records[records.arm == "base"]))


def test_the_ablation_compares_every_arm_on_the_same_seeds_and_leaves_an_underpowered_one_untested():
    # Table 1 in the same folder gave Base and MoE-MLoRA seeds 1-5; the ablation ran its variants on 1-3, and one
    # variant only on 1-2. Seeds 4 and 5 would move Base's mean (seed-dependent value), so they must be left out.
    seeds_of = {"base": range(1, 6), "moe-mlora": range(1, 6), "moe-mlora[gate-lr=0.01]": range(1, 4),
                "moe-mlora[gate-input=features]": range(1, 3)}
    rows = [{"split": "s", "dataset": "d", "model": model, "approach": arm.split("[")[0], "arm": arm, "k": 1,
             "seed": seed, "status": "ok", "wauc": 80.0 + seed + (0.3 if arm != "base" else 0.0), "valid_wauc": 80.0}
            for arm, seeds in seeds_of.items() for seed in seeds for model in ("dcn", "deepfm")]
    ablation = ablation_table(pd.DataFrame(rows))
    assert ablation.matched_seeds == [1, 2, 3]
    assert ablation.arms == ["base", "moe-mlora", "moe-mlora[gate-lr=0.01]"]
    assert ablation.untested == ["moe-mlora[gate-input=features]"]
    assert ablation.cells[("s", "base", "dcn")].mean == pytest.approx(82.0)  # seeds 1-3 only, not 1-5 (83.0)
    assert ablation.cells[("s", "base", "dcn")].n == 3
    assert ablation.deltas[("s", ("moe-mlora[gate-lr=0.01]", "base"), "dcn")].mean == pytest.approx(0.3)
    # With every variant below the bar, nothing is compared: each is listed as untested.
    few = pd.DataFrame([row for row in rows if row["seed"] <= 2])
    assert ablation_table(few).arms == ["base"] and len(ablation_table(few).untested) == 3


def test_markdown_tables_need_no_extra_dependency():
    frame = pd.DataFrame({"a": [1.234, np.nan]}, index=pd.Index(["x", "y"], name="model"))
    assert markdown_table(frame) == "| model | a |\n| --- | --- |\n| x | 1.23 |\n| y | - |"


def test_markdown_has_the_papers_layout():
    text = table1_markdown(build_table1(paper_records()))
    assert "| Dataset | Arm | wdl | nfm | autoint | pnn | dcn | fibinet | deepfm | xdeepfm | Avg |" in text
    assert "| | Δ MoE-MLoRA − MLoRA | +0.05 | -0.13 |" in text and "p (Holm, primary family)" not in text
    assert text.strip().splitlines()[-1].startswith("| – | Avg(Δ MoE-MLoRA − MLoRA) | +0.73 | +0.21 |")


def test_a_method_run_on_some_models_gets_its_own_table_tested_against_base():
    rows = []
    for seed, shift in ((1, 0.0), (2, 0.1), (3, -0.05)):
        for model in ("deepfm", "dcn", "wdl"):
            for arm, gain in (("base", 0.0), ("mlora", -0.1), ("moe-mlora", 0.05)):
                rows.append({"split": "movielens-1m-gender", "dataset": "movielens-1m", "model": model, "approach": arm,
                             "arm": arm, "k": 1, "seed": seed, "status": "ok", "wauc": 80 + shift + gain,
                             "conditions": "c"})
            if model != "wdl":  # STAR ran on two of the three backbones, half a point above Base on every seed
                rows.append({"split": "movielens-1m-gender", "dataset": "movielens-1m", "model": model,
                             "approach": "star", "arm": "star", "k": 1, "seed": seed, "status": "ok",
                             "wauc": 80.5 + shift + 0.01 * seed, "conditions": "c"})
    records = pd.DataFrame(rows)
    assert "star" not in build_table1(records, conditions="c").arms  # Table 1 keeps the arms every model has
    text = "\n".join(methods_section(records, "c", already_shown=["base", "mlora", "moe-mlora"]))
    assert "| STAR |" in text and "Δ STAR − Base | +0.5" in text and "wdl" not in text
    assert "Not shown" not in text
    assert "STAR is above Base in 2 of 2 cells: movielens-1m-gender × dcn (+0.52), movielens-1m-gender × deepfm" in text
    # A method still missing a cell (MMoE on DCN only, where STAR has both) waits and is named, not dropped unseen.
    mmoe = pd.DataFrame([{**row, "approach": "mmoe", "arm": "mmoe"} for row in rows
                         if row["arm"] == "star" and row["model"] == "dcn"])
    text = "\n".join(methods_section(pd.concat([records, mmoe]), "c", already_shown=["base", "mlora", "moe-mlora"]))
    assert "| STAR |" in text and "| MMoE |" not in text
    assert "Not shown until every (split, model) cell has a run on Base's seeds: MMoE." in text
    # A method with every cell but not yet every seed (PEPNet: seed 1 only) waits too: its cells would not
    # compare the seeds Base's do.
    pepnet = pd.DataFrame([{**row, "approach": "pepnet", "arm": "pepnet"} for row in rows
                           if row["arm"] == "star" and row["seed"] == 1])
    text = "\n".join(methods_section(pd.concat([records, pepnet]), "c", already_shown=["base", "mlora", "moe-mlora"]))
    assert "| STAR |" in text and "| PEPNet |" not in text and "seeds [1, 2, 3]" in text
    assert "Not shown until every (split, model) cell has a run on Base's seeds: PEPNet." in text
    # A method no better than Base is said to be so, in words, beside the one that is.
    mmoe_everywhere = pd.DataFrame([{**row, "approach": "mmoe", "arm": "mmoe", "wauc": row["wauc"] - 0.5 - 0.05 * (row["seed"] % 2)}
                                    for row in rows if row["arm"] == "star"])
    text = "\n".join(methods_section(pd.concat([records, mmoe_everywhere]), "c", already_shown=["base", "mlora", "moe-mlora"]))
    assert "STAR is above Base in 2 of 2 cells" in text and "No cell of MMoE differs from Base." in text


def _movielens_rows(gain_by_split: dict[str, float], seeds=(1, 2, 3, 4, 5)) -> pd.DataFrame:
    """Base, MLoRA and MoE-MLoRA on the three MovieLens splits for the paper's eight backbones; MoE-MLoRA is
    MLoRA plus the split's gain (with a little seed noise), Base equals MoE-MLoRA."""
    rng = np.random.default_rng(0)
    rows = []
    for split, gain in gain_by_split.items():
        for model in PAPER_MODELS:
            for seed in seeds:
                mlora = 80 + rng.normal(0, 0.2)
                moe = mlora + gain + rng.normal(0, 0.01)
                rows += [{"split": f"movielens-1m-{split}", "dataset": "movielens-1m", "model": model, "approach": arm,
                          "arm": arm, "k": 1, "seed": seed, "status": "ok", "wauc": value}
                         for arm, value in {"base": moe, "mlora": mlora, "moe-mlora": moe}.items()]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("gains, occupation_verdict, ordering", [
    ({"gender": -0.1, "age": 0.0, "occupation": 0.3}, "| holds |", "the ordering holds (occupation largest)"),
    ({"gender": 0.4, "age": 0.0, "occupation": -0.3}, "| does not hold |", "does not hold (gender largest)"),
])
def test_the_papers_movielens_claims_get_the_verdict_their_numbers_give(gains, occupation_verdict, ordering):
    from moe_mlora.experiments.report import paper_claims_markdown

    table = build_table1(_movielens_rows(gains))
    claims = paper_claims_markdown(table, pd.DataFrame(), pd.DataFrame(),
                                   {"movielens-1m-gender": 2, "movielens-1m-age": 7, "movielens-1m-occupation": 21})
    occupation = next(line for line in claims.splitlines() if line.startswith("| MoE-MLoRA beats MLoRA"))
    assert occupation.endswith(occupation_verdict)
    assert ordering in claims
    assert "MoE-MLoRA − Base is +0.00 on average" in claims  # Base equals MoE-MLoRA in these rows
    assert "Figure 2" not in claims  # no k > 1 runs: no verdict on more experts


@pytest.mark.parametrize("gain, verdict", [(0.0, "| holds |"), (0.5, "| does not hold |")])
def test_the_more_experts_claim_fails_when_more_experts_help_on_matched_seeds(gain, verdict):
    from moe_mlora.experiments.report import experts_frame, paper_claims_markdown

    rows = _movielens_rows({"gender": 0.1, "age": 0.1, "occupation": 0.1}, seeds=(1, 2, 3))
    rng = np.random.default_rng(1)
    more = [{**row, "k": 2, "wauc": row["wauc"] + gain + rng.normal(0, 0.01)}
            for row in rows.to_dict("records") if row["arm"] == "moe-mlora" and row["split"] == "movielens-1m-gender"]
    records = pd.concat([rows, pd.DataFrame(more)]).assign(n_domains=2)
    claims = paper_claims_markdown(build_table1(records[records.k == 1]), experts_frame(records), pd.DataFrame(), {})
    line = next(line for line in claims.splitlines() if "More experts" in line)
    assert line.endswith(verdict), line


def test_the_gap_closed_by_the_papers_conditions_compares_only_cells_with_the_same_seeds():
    from moe_mlora.experiments.report import Table1, conditions_gap_markdown
    from moe_mlora.experiments.statistics import Cell

    def table(n_by_model, conditions):
        cells = {("movielens-1m-gender", "base", m): Cell(81.0, 0.1 if n > 1 else None, n) for m, n in n_by_model.items()}
        return Table1(["movielens-1m-gender"], list(n_by_model), ["base"], [], cells=cells, conditions=conditions)

    main = table({"deepfm": 3, "dcn": 3}, "shuffled")
    other = table({"deepfm": 3, "dcn": 1}, "by-domain")  # dcn: only seed 1 so far
    text = conditions_gap_markdown(main, other)
    rows = [row for row in text.splitlines() if row.startswith("| movielens")]
    assert [row.split(" | ")[2] for row in rows] == ["deepfm"]
    assert "1 cell(s) are left out" in text
    assert conditions_gap_markdown(main, table({"deepfm": 1, "dcn": 1}, "by-domain")).startswith("2 cell(s)")


def test_a_table_under_other_conditions_keeps_the_backbones_with_every_arm_and_names_the_rest(tmp_path):
    from moe_mlora.experiments.report import DEFAULT_CONDITIONS, other_conditions_table

    paper_conditions = "by-domain batches, selection by mean-auc, 1 thread"
    rows = []
    for seed in (1, 2):
        rows += _rows("deepfm", seed, {"base": 80.0, "mlora": 79.9, "moe-mlora": 80.1}, conditions=DEFAULT_CONDITIONS)
        rows += _rows("dcn", seed, {"base": 80.0, "mlora": 79.9, "moe-mlora": 80.1}, conditions=DEFAULT_CONDITIONS)
        rows += _rows("deepfm", seed, {"base": 80.2, "mlora": 80.0, "moe-mlora": 80.3}, conditions=paper_conditions)
        rows += _rows("dcn", seed, {"base": 80.2}, conditions=paper_conditions)  # its grid is still running
    records = pd.DataFrame(rows)
    table, waiting = other_conditions_table(records, paper_conditions)
    assert table.models == ["deepfm"] and waiting == ["dcn"]
    assert table.arms == ["base", "mlora", "moe-mlora"] and table.cells[("s", "moe-mlora", "deepfm")].mean == 80.3
    complete, none_waiting = other_conditions_table(records[records.model == "deepfm"], paper_conditions)
    assert complete.models == ["deepfm"] and none_waiting == []


def test_a_table_under_other_conditions_waits_for_a_backbone_whose_arms_have_different_seeds():
    from moe_mlora.experiments.report import other_conditions_table

    paper_conditions = "by-domain batches, selection by mean-auc, 1 thread"
    rows = []
    for seed in (1, 2, 3):
        rows += _rows("deepfm", seed, {"base": 80.2, "mlora": 80.0, "moe-mlora": 80.3}, conditions=paper_conditions)
        late = {"base": 80.0, "mlora": 79.9} | ({} if seed == 3 else {"moe-mlora": 79.0 + seed})
        rows += _rows("dcn", seed, late, conditions=paper_conditions)  # MoE-MLoRA's seed 3 still running
    records = pd.DataFrame(rows)
    table, waiting = other_conditions_table(records, paper_conditions)
    assert table.models == ["deepfm"] and waiting == ["dcn"]
    complete, none_waiting = other_conditions_table(records[records.seed < 3], paper_conditions)
    assert set(complete.models) == {"deepfm", "dcn"} and none_waiting == []
    assert complete.cells[("s", "moe-mlora", "dcn")].mean == 80.5


def test_field_methods_are_listed_in_registry_order_whatever_order_the_records_give():
    assert other_methods(["mmoe", "base", "pepnet", "star", "x"]) == ["mmoe", "star", "pepnet"]
    assert other_methods(["pepnet", "star", "mmoe", "mlora"]) == ["mmoe", "star", "pepnet"]


def test_a_method_finished_on_one_more_backbone_does_not_hide_the_methods_finished_on_fewer():
    rows = []
    for seed in (1, 2, 3):
        for model in ("deepfm", "dcn", "wdl"):
            for arm, gain in (("base", 0.0), ("mlora", -0.1), ("moe-mlora", 0.05), ("epnet", 0.02 * seed),
                              ("star", 0.5 + 0.01 * seed), ("pepnet", -0.03 * seed)):
                if model == "wdl" and arm in ("star", "pepnet"):
                    continue  # EPNet has finished on WDL; STAR and PEPNet not yet
                rows.append({"split": "movielens-1m-gender", "dataset": "movielens-1m", "model": model,
                             "approach": arm, "arm": arm, "k": 1, "seed": seed, "status": "ok", "wauc": 80 + gain,
                             "conditions": "c"})
    text = "\n".join(methods_section(pd.DataFrame(rows), "c", already_shown=["base", "mlora", "moe-mlora"]))
    assert "| STAR |" in text and "| PEPNet |" in text and "| EPNet |" in text  # 3 methods x 2 models > 1 x 3
    assert "Backbones left out of this table, where fewer methods are complete so far: wdl (complete there: EPNet)." in text
    assert "Not shown" not in text


def test_the_methods_section_draws_each_delta_against_base_and_lists_it_as_the_table_computes_it(tmp_path):
    rows = []
    for seed, shift in ((1, 0.0), (2, 0.1), (3, -0.05)):
        for model in ("deepfm", "dcn"):
            for arm, gain in (("base", 0.0), ("mlora", -0.1), ("moe-mlora", 0.05), ("star", 0.5 + 0.01 * seed),
                              ("mmoe", -0.02 * seed)):
                rows.append({"split": "movielens-1m-gender", "dataset": "movielens-1m", "model": model, "approach": arm,
                             "arm": arm, "k": 1, "seed": seed, "status": "ok", "wauc": 80 + shift + gain,
                             "conditions": "c"})
    records = pd.DataFrame(rows)
    figure = tmp_path / "methods.png"
    text = "\n".join(methods_section(records, "c", already_shown=["base", "mlora", "moe-mlora"], figure=figure))
    assert figure.stat().st_size > 0 and "![Δ against Base](methods.png)" in text
    assert "![" not in "\n".join(methods_section(records, "c", already_shown=["base", "mlora", "moe-mlora"]))
    table = build_table1(records, arms=["base", "mlora", "moe-mlora", "mmoe", "star"], models=["deepfm", "dcn"],
                         conditions="c")
    deltas = method_deltas(table).set_index(["method", "model"])
    assert deltas.loc[("STAR", "dcn"), "delta"] == pytest.approx(0.52)  # the mean of 0.51, 0.52, 0.53
    assert deltas.loc[("MMoE", "deepfm"), "delta"] == pytest.approx(-0.04)
    assert bool(deltas.loc[("STAR", "dcn"), "significant"]) and not bool(deltas.loc[("MMoE", "dcn"), "significant"])
    assert ("MoE-MLoRA", "dcn") in deltas.index and "MLoRA" not in deltas.index.get_level_values("method")


def test_each_methods_variants_are_paired_by_seed_against_the_method_with_one_holm_family_per_method():
    from moe_mlora.experiments.report import variants_markdown

    rows = []
    for seed, (plain, none, aux) in enumerate([(80.0, 80.5, 80.1), (80.2, 80.6, 80.2), (79.9, 80.6, 79.9)], start=1):
        for arm, value in (("star", plain), ("star[normalisation=none]", none), ("star[auxiliary-width=0]", aux),
                           ("base", 81.0), ("moe-mlora[selection=trained]", 70.0)):
            rows.append(dict(arm=arm, split="s", model="dnn", seed=seed, k=1, wauc=value))
    text = variants_markdown(pd.DataFrame(rows))
    none_line = next(line for line in text.splitlines() if "normalisation=none" in line)
    differences = [0.5, 0.4, 0.7]
    assert f"| 3 | " in none_line and f"{np.mean(differences):+.2f}" in none_line
    p_none = stats.ttest_1samp(differences, 0).pvalue
    p_aux = stats.ttest_1samp([0.1, 0.0, 0.0], 0).pvalue
    assert f"{min(1.0, 2 * min(p_none, p_aux)):.3f}" in text  # Holm over STAR's two variants
    assert "MoE-MLoRA" not in text and "Base" not in text.split("\n\n")[0]
    assert variants_markdown(pd.DataFrame([r for r in rows if r["arm"] in ("star", "base")])) == ""
