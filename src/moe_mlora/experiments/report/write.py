"""`write_report`: every table, figure and note of a results folder, written as report.md beside its records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from moe_mlora.errors import ConfigError
from moe_mlora.experiments.controlled import gains, map_markdown, plot_map, TABLES_FOLDER
from moe_mlora.experiments.power import split_tests, split_tests_markdown
from moe_mlora.experiments.published import PUBLISHED, published_markdown
from moe_mlora.experiments.records import SCHEMA_VERSION
from moe_mlora.experiments.report.experts import (
    diagnostics_frame, experts_frame, experts_split, path_labels, plot_experts,
)
from moe_mlora.experiments.report.frame import load_records, markdown_table, model_order
from moe_mlora.experiments.report.methods import methods_section, parameter_markdown, variants_markdown
from moe_mlora.experiments.report.paper import (
    conditions_gap_markdown, paper_claims_markdown, paper_comparison_markdown, paper_key, paper_value,
)
from moe_mlora.experiments.report.patience import patience_markdown
from moe_mlora.experiments.report.table1 import (
    ablation_table, build_table1, claims_of, families_summary, main_conditions, MIN_SEEDS, mixed_machine_cells,
    other_conditions_table, other_methods, paper_moe_arm, statistics_note, table1_markdown,
)
from moe_mlora.methods import arm_title as arm_name

def write_report(results_dir: Path, out_dir: Path | None = None, title: str | None = None,
                 published: str | None = None) -> dict[str, Path]:
    """report.md (+ table1.csv, figure2.png, methods.png, records.csv) from every run recorded under results_dir (titled
    by the name of the folder it is written to unless `title` is given); `published` names a published table
    to set beside the runs (moe_mlora.experiments.published.PUBLISHED)."""
    if published is not None and published not in PUBLISHED:
        raise ConfigError(f"--published must be one of {', '.join(PUBLISHED)}, got '{published}'")
    out_dir = out_dir or results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records = load_records(results_dir)
    written: dict[str, Path] = {}
    if records.empty:
        older = len(records.attrs.get("older", []))
        raise FileNotFoundError(f"no run records of the current schema (*/result.json) under {results_dir}"
                                + (f"; {older} of an older schema: rerun the sweep to replace them" if older else ""))
    if published is not None:
        PUBLISHED[published].check(records)  # before anything is written
    records.drop(columns=["machine"]).to_csv(out_dir / "records.csv", index=False)
    written["records"] = out_dir / "records.csv"
    sections = [f"# moe-mlora results ({title or out_dir.name})", ""]
    sections += _provenance(results_dir, records)
    ok = records[records.status == "ok"]
    single = ok[ok.k == 1]
    if published is not None:
        table = PUBLISHED[published]
        sections += [f"## Beside {table.caption}", "", published_markdown(records, table), ""]
    variants = variants_markdown(ok, "auc" if published is not None else "wauc")
    if variants:
        sections += ["## Each method's variants against the method", "", variants, ""]
    if not single.empty:
        main = main_conditions(single)
        first, waiting_first = build_table1(records, conditions=main), []
        if not first.arms:  # a sweep under way, no arm in every cell yet: the backbones it has finished
            first, waiting_first = other_conditions_table(records, main)
        tables, waiting = [first], {main: waiting_first}
        for conditions in sorted(set(single["conditions"]) - {main}):
            table, waiting[conditions] = other_conditions_table(records, conditions)
            tables.append(table)
        long = []
        for index, table in enumerate(tables):
            seeds = sorted(single[single.conditions == table.conditions].seed.unique().tolist())
            title = "Table 1" if index == 0 else "Table 1 under other conditions"
            sections += [f"## {title}: {table.conditions}; test WAUC (%), mean ± 95% CI over seeds {seeds}", "",
                         table1_markdown(table), "", statistics_note(table), "",
                         families_summary(table), ""]
            mixed = mixed_machine_cells(single, table)
            if mixed:
                sections += [mixed, ""]
            if waiting[table.conditions]:
                sections += ["Not yet in this table (some arm, split or seed is not recorded under these conditions): "
                             + ", ".join(waiting[table.conditions]) + ".", ""]
            beside = paper_comparison_markdown(table)
            if beside.strip():  # only for the paper's datasets and backbones
                sections += [f"### Beside the paper ({table.conditions})", "", beside]
            if index:
                gap = conditions_gap_markdown(tables[0], table)
                if gap:
                    sections += ["### How much of the gap to the paper these conditions explain", "",
                                 "Per cell both tables have: ours − paper under the main conditions and under these; "
                                 "gap closed = |first| − |second| (positive: these conditions bring us nearer the "
                                 "paper).", "", gap, ""]
            long += [{"conditions": table.conditions, "split": s, "arm": a, "model": m, "wauc": c.mean,
                      "ci95": c.ci95, "seeds": c.n, "paper": paper_value(paper_key(s), a, m)}
                     for (s, a, m), c in table.cells.items()]
        tests = split_tests(records[records.conditions == tables[0].conditions], claims_of(tables[0]))
        if tests:
            sections += [f"## Split-level tests: backbone × seed pairs as replicates ({tables[0].conditions})", "",
                         split_tests_markdown(tests)]
        if other_methods(tables[0].arms):  # the field's methods in Table 1 itself: their sizes beside Base's
            main_rows = single[(single.conditions == tables[0].conditions) & single.model.isin(tables[0].models)]
            sizes = parameter_markdown(main_rows, ["base", *other_methods(tables[0].arms)])
            if sizes:
                sections += [f"## Sizes ({tables[0].conditions})", "", sizes, ""]
        pd.DataFrame(long).to_csv(out_dir / "table1.csv", index=False)
        written["table1"] = out_dir / "table1.csv"
        methods_figure = out_dir / "methods.png"
        methods_figure.unlink(missing_ok=True)  # a figure left by an earlier report must not outlive its section
        sections += methods_section(records, main, already_shown=tables[0].arms, figure=methods_figure)
        if methods_figure.exists():
            written["methods"] = methods_figure
    ablation = ablation_table(records)
    if ablation is not None and (len(ablation.arms) > 2 or ablation.untested):
        validation = pd.DataFrame({"mean validation WAUC (%)": ablation.valid_average}).rename(index=arm_name)
        validation.index.name = "arm"
        sections += [f"## Ablation: MoE-MLoRA variants against Base, test WAUC (%), matched seeds "
                     f"{ablation.matched_seeds}", "", table1_markdown(ablation), "",
                     statistics_note(ablation), "", families_summary(ablation), "",
                     f"Mean validation WAUC per arm over the {ablation.valid_cells} (split, model, seed) cells that every arm "
                     "has (what a variant is chosen by; never test):", "",
                     markdown_table(validation), ""]
        if ablation.untested:
            sections += [f"Untested (fewer than {MIN_SEEDS} of the matched seeds, so not compared): "
                         + ", ".join(arm_name(a) for a in ablation.untested), ""]
    diagnostics = diagnostics_frame(records)
    if not diagnostics.empty:
        sections += ["## What the gate does (MoE-MLoRA, k = 1; means over models and seeds)", "",
                     "experts_kept_start: the share of phase-2 experts whose chosen epoch was 0, i.e. that validation "
                     "never accepted (such an expert stays at its start, B = 0, and adds nothing); "
                     "uniform_own_weight: what a uniform gate puts on a domain's own expert; start_own_weight and "
                     "own_weight: the gate's weight on it when the gate phase began and at the end, averaged over "
                     "domains; kept_start: the share of runs whose gate phase chose epoch 0 (kept its starting gate). "
                     "Then WAUC (%) of three forward paths of the final model, which are per arm:", "",
                     *path_labels(records[records.k == 1]), "", markdown_table(diagnostics, digits=3), ""]
    experts = experts_frame(records)
    if not single.empty:
        claims = paper_claims_markdown(tables[0], experts, diagnostics_frame(records, tables[0].conditions or None),
                                       single.groupby("split")["n_domains"].first().to_dict())
        if claims:
            sections += [f"## The paper's MovieLens claims, checked ({tables[0].conditions})", "", claims, ""]
    if not experts.empty:
        split = experts_split(experts)
        figure = plot_experts(experts, out_dir / "figure2.png")
        if figure:
            written["figure2"] = figure
            data = experts[experts.split == split]
            pivot = data.pivot_table(index="model", columns="total_experts", values="wauc")
            deltas = data.assign(text=[f"{d:+.2f} ± {c:.2f}" if c == c and c is not None else f"{d:+.2f}"
                                       for d, c in zip(data.delta, data.delta_ci95)])
            delta_pivot = deltas.pivot(index="model", columns="total_experts", values="text")
            order = [m for m in model_order(pivot.index)]
            pivot, delta_pivot = pivot.reindex(order), delta_pivot.reindex(order)
            pivot.columns = [f"{c} experts" for c in pivot.columns]
            delta_pivot.columns = [f"{c} experts" for c in delta_pivot.columns]
            pivot.index.name = delta_pivot.index.name = "model"
            pivot["seeds"] = data.groupby("model")["seed_list"].first()
            rule = arm_name(paper_moe_arm(single.arm.unique()))
            sections += [f"## Figure 2: {rule} vs total experts ({split}), matched seeds", "",
                         "![Figure 2](figure2.png)", "",
                         "Every point of a model uses the same seeds (those every k has). Test WAUC (%):", "",
                         markdown_table(pivot), "", "Paired Δ against k = 1 (points, ± 95% t-interval over seeds):",
                         "", markdown_table(delta_pivot), ""]
    controlled = gains(records, results_dir / TABLES_FOLDER) if "table_path" in records else pd.DataFrame()
    if not controlled.empty:
        figure = plot_map(controlled, out_dir / "controlled.png")
        written["controlled"] = figure
        controlled.to_csv(out_dir / "controlled.csv", index=False)
        sections += ["## When do domain adapters help? (controlled tables)", "", "![map](controlled.png)", "",
                     "Gain over Base: test WAUC points, mean of per-seed paired differences ± 95% t-interval (not "
                     "corrected for multiplicity). Oracle gap: the true per-domain model's test WAUC minus that of the "
                     "best model that cannot see the domain (it knows the truth and mixes the domains a pair could "
                     "come from), on the same test rows (moe_mlora.data.controlled).", "",
                     map_markdown(controlled), ""]
    patience = patience_markdown(ok)
    if patience:
        sections += ["## A longer patience beside the protocol's", "", patience, ""]
    failed = records[records.status == "failed"]
    if not failed.empty:
        sections += ["## Failed runs", ""] + [f"- {r.split} {r.model} {r.arm} seed {r.seed}: {r.error}"
                                               for r in failed.itertuples()] + [""]
    (out_dir / "report.md").write_text("\n".join(sections) + "\n")
    written["report"] = out_dir / "report.md"
    return written


def _provenance(results_dir: Path, records: pd.DataFrame) -> list[str]:
    machines = {json.dumps(json.loads(m), sort_keys=True) for m in records["machine"] if m and m != "{}"}
    sweeps_file = results_dir / "sweeps.jsonl"
    wall = sum(json.loads(line)["seconds"] for line in sweeps_file.read_text().splitlines()) if sweeps_file.is_file() else None
    lines = [f"- runs: {int((records.status == 'ok').sum())} finished, {int((records.status == 'failed').sum())} failed; "
             f"seeds: {sorted(records.seed.unique().tolist())}",
             f"- compute: {records.seconds.sum() / 60:.1f} min summed over runs"
             + (f"; {wall / 60:.1f} min of sweep wall time" if wall else "")]
    commits = records.groupby(["commit", "dirty"]).size()
    lines.append("- code: " + "; ".join(f"commit {commit[:12]}{' (with uncommitted changes)' if dirty else ''}: "
                                        f"{count} runs" for (commit, dirty), count in commits.items()))
    settings = records.groupby("conditions").size()
    lines.append("- training conditions (each its own table; a cell never pools conditions): "
                 + "; ".join(f"{conditions}: {count} runs" for conditions, count in settings.items()))
    for machine in sorted(machines):
        lines.append(f"- machine: {machine}")
    numerics = records.groupby("numerics").size()
    if len(numerics) > 1:  # float results depend on the torch build and the thread count
        lines.append("- **numerics differ between records**: " + "; ".join(f"{setting}: {count} runs"
                                                                          for setting, count in numerics.items()))
    if records.synthetic.any():
        lines.append("- rows marked SYNTHETIC ran on the generated Taobao stand-in, not the real logs")
    if records.attrs.get("older"):
        lines.append(f"- left out: {len(records.attrs['older'])} records of an older schema than {SCHEMA_VERSION} "
                     "(rerun the sweep to replace them)")
    if records.attrs.get("unreadable"):
        lines.append(f"- left out: {len(records.attrs['unreadable'])} unreadable records: "
                     + ", ".join(records.attrs["unreadable"]))
    return lines + [""]
