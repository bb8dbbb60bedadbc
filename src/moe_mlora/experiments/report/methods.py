"""The field's methods against Base: Deltas with Holm, what wins where, a plot, and each method's size."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from moe_mlora.experiments.figures import pyplot
from moe_mlora.experiments.power import Claim, split_tests, split_tests_markdown
from moe_mlora.experiments.report.frame import model_order, p_text, paper_order
from moe_mlora.experiments.statistics import holm, paired_t, summarise
from moe_mlora.experiments.report.table1 import (
    build_table1, comparison_name, complete_arms, families_summary, other_methods, Table1, table1_markdown,
)
from moe_mlora.methods import arm_title as arm_name

def methods_section(records: pd.DataFrame, conditions: str, already_shown: list[str] = (),
                    figure: Path | None = None) -> list[str]:
    """The field's methods (registered, not the paper's) beside the paper's arms, each tested against Base (one
    Holm family per method); nothing when Table 1 already shows them all. A method is shown once it has, in
    every (split, model) cell of the models shown, the seeds Base has there (so every cell compares the same
    seeds). The models shown are the set that shows the most such (method, model) pairs (then more models): one
    method finished on a third backbone does not hide the others finished on two. What waits is named. With
    `figure`, the Δs against Base are also drawn there (`plot_method_deltas`) and the section shows it."""
    single = records[(records.status == "ok") & (records.k == 1) & (records.conditions == conditions)]
    others = other_methods(single.arm.unique())
    if not others or set(others) <= set(already_shown):
        return []
    splits = sorted(set(single.split))
    seeds = {key: frozenset(group.seed) for key, group in single.groupby(["arm", "split", "model"])}

    def complete_on(arm: str, model: str) -> bool:
        return all(seeds.get((arm, s, model), frozenset()) == seeds.get(("base", s, model)) for s in splits)

    candidates = [m for m in model_order(set(single.model)) if any(complete_on(arm, m) for arm in others)]
    best = (0, 0, [], [])
    for size in range(1, len(candidates) + 1):
        for chosen in itertools.combinations(candidates, size):
            complete = [arm for arm in others if all(complete_on(arm, m) for m in chosen)]
            best = max(best, (len(complete) * size, size, list(chosen), complete), key=lambda b: b[:2])
    _, _, models, shown = best
    if not shown:
        return []
    arms = [a for a in complete_arms(single[single.model.isin(models)], splits, models) if a not in others or a in shown]
    table = build_table1(records, arms=arms, models=models, conditions=conditions)
    used = sorted(single[single.arm.isin(shown) & single.model.isin(models)].seed.unique().tolist())
    waiting = [arm for arm in others if arm not in shown]
    left_out = [(m, [arm_name(a) for a in others if complete_on(a, m)]) for m in candidates if m not in models]
    drawn = plot_method_deltas(method_deltas(table), figure) if figure is not None else None
    sizes = parameter_markdown(single[single.model.isin(models)], ["base", *shown])
    method_claims = tuple(Claim(comparison_name(c), *c) for c in table.comparisons if c[0] in shown)
    tests = split_tests(single[single.model.isin(models)], method_claims)
    return [f"## The field's methods beside the paper's arms ({conditions}; test WAUC (%), seeds {used})", "",
            "Only the models on which these methods have every cell on Base's seeds. Each method is tested against "
            "Base on the same seeds, one Holm family per comparison.", "", table1_markdown(table), "",
            families_summary(table), ""] + ([f"![Δ against Base]({drawn.name})", ""] if drawn else []) + (
        [f"### The same Δs per split, the {len(models)} backbones as replicates", "", split_tests_markdown(tests)]
        if tests else []) + ([sizes, ""] if sizes else []) + (
        [f"Not shown until every (split, model) cell has a run on Base's seeds: "
         f"{', '.join(arm_name(a) for a in waiting)}.", ""] if waiting else []) + (
        ["Backbones left out of this table, where fewer methods are complete so far: "
         + "; ".join(f"{m} (complete there: {', '.join(names)})" for m, names in left_out) + ".", ""]
        if left_out else [])


def method_deltas(table: Table1) -> pd.DataFrame:
    """Every Δ against Base in `table`, one row per (method, split, model): the mean of the per-seed paired
    differences (test WAUC points), its 95% half-width, its Holm-corrected p (within the method's family) and
    whether that is below 0.05."""
    rows = [{"method": arm_name(arm), "split": split, "model": model, "delta": cell.mean, "ci95": cell.ci95,
             "seeds": cell.n, "p_holm": cell.p_holm, "significant": cell.p_holm is not None and cell.p_holm < 0.05}
            for (split, (arm, reference), model), cell in table.deltas.items() if reference == "base"]
    return pd.DataFrame(rows, columns=["method", "split", "model", "delta", "ci95", "seeds", "p_holm", "significant"])


def plot_method_deltas(deltas: pd.DataFrame, path: Path) -> Path | None:
    """A forest plot: one panel per method, one row per (split, model), its Δ against Base with the 95% interval;
    a filled point is significant after Holm within the method's family, a hollow one is not."""
    if deltas.empty:
        return None
    plt = pyplot()

    methods = list(dict.fromkeys(deltas.method))
    models = model_order(set(deltas.model))
    cells = sorted(set(zip(deltas.split, deltas.model)), key=lambda c: (paper_order(c[0]), models.index(c[1])))
    row_of = {cell: index for index, cell in enumerate(reversed(cells))}
    figure, axes = plt.subplots(1, len(methods), figsize=(2.6 * len(methods) + 1.8, 0.32 * len(cells) + 1.4),
                                sharex=True, sharey=True, squeeze=False)  # one scale: panels compare
    for axis, method in zip(axes[0], methods):
        for row in deltas[deltas.method == method].itertuples():
            y = row_of[(row.split, row.model)]
            axis.errorbar(row.delta, y, xerr=0 if row.ci95 is None or row.ci95 != row.ci95 else row.ci95, fmt="o",
                          markersize=4, capsize=2, color="C0", markerfacecolor="C0" if row.significant else "white")
        axis.axvline(0, color="black", linewidth=1)
        axis.set_title(method, fontsize=9)
        axis.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(list(row_of.values()), [f"{split} · {model}" for split, model in row_of])
    axes[0][0].tick_params(axis="y", labelsize=7)
    figure.supxlabel("Δ test WAUC against Base (points, paired by seed) ± 95% t-interval; filled: significant after "
                     "Holm within the method's family", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def parameter_markdown(records: pd.DataFrame, arms: list[str]) -> str:
    """Each arm's trainable parameters per split and backbone (the model as trained: backbone and the method's
    parts), with its multiple of Base's, and the method's own parameters per domain (own / domains)."""
    if "parameters" not in records or records.parameters.isna().all():
        return ""
    sizes = records.groupby(["arm", "split", "model"]).agg(parameters=("parameters", "first"),
                                                            domains=("n_domains", "first")).reset_index()
    base = sizes[sizes.arm == "base"].set_index(["split", "model"]).parameters
    lines = ["| method | split | " + " | ".join(model_order(set(sizes.model))) + " |",
             "|---|---|" + "---|" * sizes.model.nunique()]
    for arm in [a for a in arms if a in set(sizes.arm)]:
        for split in sorted(set(sizes.split), key=paper_order):
            cells = []
            for model in model_order(set(sizes.model)):
                row = sizes[(sizes.arm == arm) & (sizes.split == split) & (sizes.model == model)]
                if row.empty or (split, model) not in base.index:
                    cells.append("-")
                    continue
                total, domains, reference = int(row.parameters.iloc[0]), int(row.domains.iloc[0]), base[(split, model)]
                own = (total - reference) / max(domains, 1)
                cells.append(f"{total:,} ({total / reference:.2f}× Base" + (f"; {own:,.0f} per domain)" if arm != "base" else ")"))
            lines.append(f"| {arm_name(arm)} | {split} | " + " | ".join(cells) + " |")
    return ("Size: trainable parameters of the model as trained (backbone and the method's parts), its multiple of "
            "Base's, and the method's own parameters divided by the number of domains:\n\n" + "\n".join(lines))


def variants_markdown(ok: pd.DataFrame, metric: str = "wauc") -> str:
    """Each method's variants (its own settings changed: STAR's ablations, a per-domain output, a personal prior)
    against the method as first run, paired by seed on the same split and backbone, one Holm family per method;
    '' where no method has a variant beside its plain arm. MoE-MLoRA's variants have the ablation table."""
    ok = ok[ok.k == 1] if "k" in ok else ok
    approach = ok.arm.str.partition("[")[0]
    lines, families = [], []
    for method in [m for m in dict.fromkeys(approach) if m not in ("base", "moe-mlora")]:
        plain = ok[ok.arm == method].set_index(["split", "model", "seed"])[metric]
        variants = sorted(set(ok.arm[(approach == method) & (ok.arm != method)]))
        if plain.empty or not variants:
            continue
        rows = []
        for arm in variants:
            ours = ok[ok.arm == arm].set_index(["split", "model", "seed"])[metric]
            paired = ours.sub(plain).dropna()
            rows.append([arm, summarise(ours.to_numpy()), summarise(paired.to_numpy()), paired_t(paired.to_numpy())])
        tested = [i for i, row in enumerate(rows) if row[3] is not None]
        adjusted = dict(zip(tested, holm([rows[i][3] for i in tested]))) if tested else {}
        families.append(method)
        lines += [f"| {arm_name(arm)} | {delta.n} | {value.text()} | {delta.text(signed=True)} | "
                  f"{p_text(adjusted[i]) if i in adjusted else '-'} |" for i, (arm, value, delta, _) in enumerate(rows)]
    if not lines:
        return ""
    name = {"wauc": "test WAUC", "auc": "overall test AUC"}.get(metric, metric)
    return "\n".join([f"| variant | pairs | {name} (%) | Δ against its method (points) | p (Holm) |",
                      "|---|---|---|---|---|", *lines, "",
                      f"Each variant against its method as first run ({', '.join(arm_name(m) for m in families)}), paired "
                      "by seed on the same split and backbone; ± the 95% t-interval over the pairs; p: the paired t, "
                      "Holm-corrected within each method's variants (one family per method)."])
