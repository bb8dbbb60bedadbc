"""Table 1: test WAUC per split x arm x backbone with intervals, and the paired, Holm-corrected Deltas between arms."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from moe_mlora.experiments.power import Claim, CLAIMS, PAPER_SELECTION_ARM
from moe_mlora.experiments.report.frame import (
    mean_of, p_text, paper_order, signed, DEFAULT_CONDITIONS, model_order, PAPER_ARMS,
)
from moe_mlora.experiments.statistics import Cell, holm, paired_t, summarise
from moe_mlora.methods import arm_title as arm_name, METHODS, PAPER_METHODS

Comparison = tuple[str, str]  # (arm, reference arm): Delta = arm - reference


@dataclass
class Table1:
    splits: list[str]
    models: list[str]
    arms: list[str]
    comparisons: list[Comparison]
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)  # (split, arm, model)
    deltas: dict[tuple[str, Comparison, str], Cell] = field(default_factory=dict)  # (split, comparison, model)
    row_average: dict[tuple[str, object], float] = field(default_factory=dict)  # (split, arm | comparison)
    avg_delta: dict[tuple[Comparison, str], float] = field(default_factory=dict)  # (comparison, model)
    overall_avg_delta: dict[Comparison, float] = field(default_factory=dict)
    dataset_of: dict[str, str] = field(default_factory=dict)
    valid_average: dict[str, float] = field(default_factory=dict)  # arm -> mean validation WAUC, common cells
    valid_cells: int = 0  # the (split, model, seed) cells every arm has
    untested: list[str] = field(default_factory=list)  # arms left out for lacking seeds (the ablation)
    matched_seeds: list = field(default_factory=list)  # the seeds every arm is compared on (the ablation)

    conditions: str = ""
    moe_arm: str = "moe-mlora"  # the table's MoE-MLoRA: the paper's selection where recorded, else the greedy rule

    @property
    def tests(self) -> int:
        return sum(cell.p_value is not None for cell in self.deltas.values())

    @property
    def primary(self) -> Comparison | None:
        """The family that decides the headline, named in advance: the paper's MoE-MLoRA − MLoRA where the
        table has it, else its first comparison."""
        if (self.moe_arm, "mlora") in self.comparisons:
            return (self.moe_arm, "mlora")
        return self.comparisons[0] if self.comparisons else None

    def family_tests(self, comparison: Comparison) -> int:
        return sum(cell.p_value is not None for key, cell in self.deltas.items() if key[1] == comparison)

    def significant(self, comparison: Comparison, pooled: bool = False, alpha: float = 0.05) -> list[tuple[str, str, Cell]]:
        return [(split, model, cell) for (split, c, model), cell in self.deltas.items() if c == comparison
                and (cell.p_holm_pooled if pooled else cell.p_holm) is not None
                and (cell.p_holm_pooled if pooled else cell.p_holm) < alpha]


def default_comparisons(arms: list[str]) -> list[Comparison]:
    """Every MoE-MLoRA arm against Base, and the paper's own MoE-MLoRA against MLoRA (the paper's Delta); then
    every other registered method against Base."""
    comparisons = [(arm, "base") for arm in arms if arm.startswith("moe-mlora") and "base" in arms]
    moe = paper_moe_arm(arms)
    if moe in arms and "mlora" in arms:
        comparisons.insert(1 if comparisons else 0, (moe, "mlora"))
    others = set(other_methods(arms))  # and Base's own variants (Base without the domain field)
    return comparisons + [(arm, "base") for arm in arms if (arm in others or arm.startswith("base[")) and "base" in arms]


def paper_moe_arm(arms) -> str:
    """The arm that stands for the paper's MoE-MLoRA: the paper's selection (every expert and the gate train)
    where it was recorded, else the greedy rule of the older records."""
    return PAPER_SELECTION_ARM if PAPER_SELECTION_ARM in set(arms) else "moe-mlora"


def other_methods(arms) -> list[str]:
    """The arms that are registered methods other than the paper's three (STAR, PEPNet, ...), in the registry's
    order (not the order the records happen to list them in)."""
    present = set(arms)
    return [name for name in METHODS if name in present and name not in PAPER_METHODS]


def complete_arms(ok: pd.DataFrame, splits: list[str], models: list[str]) -> list[str]:
    """The arms recorded for every split and model: the paper's three first, then variants."""
    present = [arm for arm in dict.fromkeys(ok["arm"])
               if all(((ok.split == s) & (ok.model == m) & (ok.arm == arm)).any() for s in splits for m in models)]
    return [a for a in PAPER_ARMS if a in present] + sorted(a for a in present if a not in PAPER_ARMS)


def main_conditions(records: pd.DataFrame) -> str | None:
    """The conditions of the headline table: ours (shuffled batches, WAUC selection, 1 thread) where recorded,
    else the most common."""
    if "conditions" not in records or records.empty:
        return None
    counts = records["conditions"].value_counts()
    return DEFAULT_CONDITIONS if DEFAULT_CONDITIONS in counts else str(counts.index[0])


def build_table1(records: pd.DataFrame, arms: list[str] | None = None, models: list[str] | None = None,
                 comparisons: list[Comparison] | None = None, conditions: str | None = None) -> Table1:
    """Table 1 of the records under one set of training conditions (default: main_conditions)."""
    ok = records[(records["status"] == "ok") & (records["k"] == 1)]
    if "arm" not in ok:
        ok = ok.assign(arm=ok["approach"])
    conditions = conditions or main_conditions(ok)
    if conditions is not None and "conditions" in ok:
        ok = ok[ok["conditions"] == conditions]
    if models is not None:
        ok = ok[ok.model.isin(models)]
    splits = sorted(dict.fromkeys(ok["split"]), key=paper_order)
    models = model_order(set(ok["model"]))
    arms = arms if arms is not None else complete_arms(ok, splits, models)
    comparisons = comparisons if comparisons is not None else default_comparisons(arms)
    table = Table1(splits, models, arms, comparisons, dataset_of=dict(zip(ok["split"], ok["dataset"])),
                   conditions=conditions or "", moe_arm=paper_moe_arm(arms))
    for split in splits:
        for arm in arms:
            for model in models:
                rows = ok[(ok.split == split) & (ok.arm == arm) & (ok.model == model)]
                table.cells[(split, arm, model)] = summarise(rows["wauc"].to_numpy())
            table.row_average[(split, arm)] = mean_of([table.cells[(split, arm, m)].mean for m in models])
        for comparison in comparisons:
            for model in models:
                table.deltas[(split, comparison, model)] = paired_delta(ok[(ok.split == split) & (ok.model == model)],
                                                                        *comparison)
            table.row_average[(split, comparison)] = mean_of([table.deltas[(split, comparison, m)].mean for m in models])
    _holm_correct(table.deltas)
    datasets = list(dict.fromkeys(table.dataset_of[s] for s in splits))
    for comparison in comparisons:
        for model in models:
            table.avg_delta[(comparison, model)] = mean_of([
                mean_of([table.deltas[(s, comparison, model)].mean for s in splits if table.dataset_of[s] == d])
                for d in datasets])
        table.overall_avg_delta[comparison] = mean_of([
            mean_of([table.row_average[(s, comparison)] for s in splits if table.dataset_of[s] == d]) for d in datasets])
    if "valid_wauc" in ok:
        # Over the (split, model, seed) cells every arm has, so that arms compare on the same runs.
        keyed = ok[ok.arm.isin(arms)].set_index(["split", "model", "seed"])
        common = set.intersection(*(set(keyed[keyed.arm == arm].index) for arm in arms)) if arms else set()
        for arm in arms:
            rows = keyed[(keyed.arm == arm) & keyed.index.isin(list(common))]
            table.valid_average[arm] = mean_of(rows["valid_wauc"].tolist())
        table.valid_cells = len(common)
    return table


def other_conditions_table(records: pd.DataFrame, conditions: str) -> tuple[Table1, list[str]]:
    """Table 1 under conditions other than the main ones, whose grid may still be running: it keeps the backbones
    that have every arm recorded in every split under these conditions, each arm with the same seeds (so every
    arm averages the same backbones and every cell of a backbone the same seeds), and returns the others, which
    wait. With no such backbone it is the arms every backbone has, as for the main table."""
    ok = records[(records.status == "ok") & (records.k == 1) & (records.conditions == conditions)]
    splits, models, arms = list(set(ok.split)), model_order(set(ok.model)), set(ok.arm)

    def complete_on_matched_seeds(model: str) -> bool:
        rows = ok[ok.model == model]
        seeds = {cell: frozenset(group.seed) for cell, group in rows.groupby(["split", "arm"])}
        return len(seeds) == len(splits) * len(arms) and len(set(seeds.values())) == 1

    complete = [m for m in models if complete_on_matched_seeds(m)]
    if not complete or len(complete) == len(models):
        return build_table1(records, conditions=conditions), []
    return build_table1(records, models=complete, conditions=conditions), [m for m in models if m not in complete]


def paired_delta(rows: pd.DataFrame, arm: str = "moe-mlora", reference: str = "mlora") -> Cell:
    """arm - reference over the seeds both have: mean, 95% CI, and a paired t-test's (uncorrected) p-value."""
    ours = rows[rows.arm == arm].set_index("seed")["wauc"]
    theirs = rows[rows.arm == reference].set_index("seed")["wauc"]
    seeds = sorted(set(ours.index) & set(theirs.index))
    if not seeds:
        return Cell(float("nan"), None, 0)
    differences = (ours.loc[seeds] - theirs.loc[seeds]).to_numpy()
    cell = summarise(differences)
    return Cell(cell.mean, cell.ci95, cell.n, paired_t(differences))


def _holm_correct(deltas: dict) -> None:
    """Each comparison is its own family (its cells, e.g. the paper's MoE-MLoRA − MLoRA over every split and
    model: the primary family, named before the results); the pooled correction over every Delta cell of the
    table is reported beside it as secondary."""
    tested = [key for key, cell in deltas.items() if cell.p_value is not None]
    pooled = dict(zip(tested, holm([deltas[key].p_value for key in tested]))) if tested else {}
    for comparison in dict.fromkeys(key[1] for key in tested):
        family = [key for key in tested if key[1] == comparison]
        for key, adjusted in zip(family, holm([deltas[key].p_value for key in family])):
            cell = deltas[key]
            deltas[key] = Cell(cell.mean, cell.ci95, cell.n, cell.p_value, adjusted, pooled[key])


def comparison_name(comparison: Comparison) -> str:
    arm, reference = comparison
    return f"Δ {arm_name(arm)} − {arm_name(reference)}"


def table1_markdown(table: Table1) -> str:
    header = "| Dataset | Arm | " + " | ".join(m for m in table.models) + " | Avg |"
    lines = [header, "|" + " --- |" * (len(table.models) + 3)]
    for split in table.splits:
        label = split + (" (SYNTHETIC)" if table.dataset_of[split].endswith("synthetic") else "")
        for arm in table.arms:
            cells = [table.cells[(split, arm, m)].text() for m in table.models]
            lines.append(f"| {label} | {arm_name(arm)} | " + " | ".join(cells) + f" | {table.row_average[(split, arm)]:.2f} |")
            label = ""
        for comparison in table.comparisons:
            deltas = [table.deltas[(split, comparison, m)] for m in table.models]
            lines.append(f"| | {comparison_name(comparison)} | " + " | ".join(d.text(signed=True) + stars(d) for d in deltas)
                         + f" | {table.row_average[(split, comparison)]:+.2f} |")
            if any(d.p_holm is not None for d in deltas):
                family = "primary" if comparison == table.primary else "secondary"
                lines.append(f"| | p (Holm, {family} family) | " + " | ".join(p_text(d.p_holm) for d in deltas) + " | |")
    for comparison in table.comparisons:
        lines.append(f"| – | Avg({comparison_name(comparison)}) | "
                     + " | ".join(signed(table.avg_delta[(comparison, m)]) for m in table.models)
                     + f" | {signed(table.overall_avg_delta[comparison])} |")
    return "\n".join(lines)


def stars(cell: Cell) -> str:
    return " *" if cell.p_holm is not None and cell.p_holm < 0.05 else ""


def significant_deltas(table: Table1, alpha: float = 0.05) -> list[tuple[str, Comparison, str, Cell]]:
    return [(split, comparison, model, cell) for (split, comparison, model), cell in table.deltas.items()
            if cell.p_holm is not None and cell.p_holm < alpha]


MIN_SEEDS = 3  # the fewest seeds a compared arm may have (the bar the issues set for every table)


def ablation_table(records: pd.DataFrame) -> Table1 | None:
    """Every MoE-MLoRA arm (k = 1) against Base, on the models that have more than one such arm, under the main
    conditions, on matched seeds: the seeds that Base and every compared arm have in every (split, model) cell.
    An arm with fewer than MIN_SEEDS such seeds, or without the seeds the others share, is left out and listed in
    the table's `untested` (an underpowered variant is not compared). Seeds that only some arms have (Table 1's
    extra seeds, run in the same results folder) are left out of every arm alike."""
    ok = records[(records.status == "ok") & (records.k == 1)]
    if "conditions" in ok and not ok.empty:
        ok = ok[ok["conditions"] == main_conditions(ok)]
    moe = ok[ok.approach == "moe-mlora"]
    arms_per_model = moe.groupby("model")["arm"].nunique()
    if arms_per_model.empty or arms_per_model.max() < 2:
        return None
    models = [m for m in model_order(arms_per_model.index) if arms_per_model.get(m, 0) == arms_per_model.max()]
    candidates = ["moe-mlora"] + sorted(set(moe.arm) - {"moe-mlora"})
    scope = ok[ok.model.isin(models)]
    cells = sorted({cell for cell, _ in scope[scope.arm == "base"].groupby(["split", "model"])})

    def seeds_in_every_cell(arm: str) -> set:
        rows = scope[scope.arm == arm]
        has = {cell: set(group.seed) for cell, group in rows.groupby(["split", "model"])}
        return set.intersection(*(has.get(cell, set()) for cell in cells)) if cells else set()

    base_seeds = seeds_in_every_cell("base")
    covered = {arm: seeds_in_every_cell(arm) & base_seeds for arm in candidates if (scope.arm == arm).any()}
    eligible = [arm for arm, seeds in covered.items() if len(seeds) >= MIN_SEEDS]
    matched = set.intersection(*(covered[arm] for arm in eligible)) if eligible else set()
    if len(matched) < MIN_SEEDS and "moe-mlora" in eligible:  # no common set: the default variant's seeds decide
        matched = covered["moe-mlora"]
    if len(matched) < MIN_SEEDS:
        matched = set()
    arms = ["base"] + [arm for arm in eligible if matched and matched <= covered[arm]]
    untested = [arm for arm in covered if arm not in arms]
    chosen = ok[ok.arm.isin(arms) & ok.seed.isin(matched or base_seeds)]
    table = build_table1(chosen, arms=arms, models=models,
                         comparisons=[(arm, "base") for arm in arms if arm != "base"])
    table.untested, table.matched_seeds = untested, sorted(matched)
    return table


def families_summary(table: Table1) -> str:
    """The headline decided by the primary family, and the pooled correction beside it."""
    if table.primary is None or not table.tests:
        return ""
    parts = []
    for comparison in table.comparisons:
        tests = table.family_tests(comparison)
        own, pooled = len(table.significant(comparison)), len(table.significant(comparison, pooled=True))
        role = "primary" if comparison == table.primary else "secondary"
        parts.append(f"- {comparison_name(comparison)} ({role} family, {tests} cells): {own} significant after Holm "
                     f"within the family; {pooled} after Holm pooled over all {table.tests} Δ cells")
    wins = what_wins_where(table)
    return "\n".join(parts) + (f"\n\n{wins}" if wins else "")


def what_wins_where(table: Table1, alpha: float = 0.05) -> str:
    """In words, where each of the field's methods differs from Base: the cells whose Δ is significant after Holm
    within the method's own family, with their sign; '' when the table compares no such method with Base."""
    compared = [c for c in table.comparisons if c[1] == "base" and c[0] in other_methods([c[0]])]
    if not compared:
        return ""
    found = []
    for comparison in compared:
        cells = sorted(table.significant(comparison, alpha=alpha), key=lambda hit: (paper_order(hit[0]), hit[1]))
        for direction, chosen in (("above", [h for h in cells if h[2].mean > 0]), ("below", [h for h in cells if h[2].mean < 0])):
            if chosen:
                where = ", ".join(f"{split} × {model} ({signed(cell.mean)})" for split, model, cell in chosen)
                found.append(f"{arm_name(comparison[0])} is {direction} Base in {len(chosen)} of "
                             f"{table.family_tests(comparison)} cells: {where}")
    names = ", ".join(arm_name(c[0]) for c in compared)
    if not found:
        return (f"**What wins where** (each method against Base, Holm within its family, p < {alpha:g}): no cell of "
                f"{names} differs from Base.")
    quiet = [arm_name(c[0]) for c in compared if not table.significant(c, alpha=alpha)]
    return (f"**What wins where** (each method against Base, Holm within its family, p < {alpha:g}): "
            + "; ".join(found) + "." + (f" No cell of {', '.join(quiet)} differs from Base." if quiet else ""))


def mixed_machine_cells(records: pd.DataFrame, table: Table1) -> str:
    """A line naming the table's cells whose seeds ran on more than one machine (CPU model, torch, threads), with
    which seeds ran where; empty when every cell is of one machine."""
    if "numerics" not in records:
        return ""
    rows = records[(records.conditions == table.conditions) & records.arm.isin(table.arms) & records.model.isin(table.models)
                   & records.split.isin(table.splits)]
    parts = []
    for (split, arm, model), group in rows.groupby(["split", "arm", "model"]):
        if group.numerics.nunique() > 1:
            where = "; ".join(f"seeds {sorted(g.seed.tolist())} on {n}" for n, g in group.groupby("numerics"))
            parts.append(f"{split} × {arm_name(arm)} × {model} ({where})")
    if not parts:
        return ""
    return (f"**{len(parts)} cell(s) of this table mix machines** (a mean over seeds made on different CPU models or "
            "torch builds; a rerun on another machine moves a run's last digits): " + "; ".join(parts) + ".")


def claims_of(table: Table1) -> tuple[Claim, ...]:
    """The paper's claims (moe_mlora.experiments.power.CLAIMS), then every other Δ family of the table, each
    tested per split with backbones as replicates."""
    named = {(claim.arm, claim.reference) for claim in CLAIMS}
    return CLAIMS + tuple(Claim(comparison_name(c), *c) for c in table.comparisons if c not in named)


def statistics_note(table: Table1) -> str:
    """How to read a table's cells and tests, naming its primary family (the paper's Δ where the table has it)."""
    if table.primary == (table.moe_arm, "mlora"):
        primary = "the paper's own Δ MoE-MLoRA − MLoRA"
    elif table.primary is not None:
        primary = f"{comparison_name(table.primary)}, as the table has no MLoRA arm for the paper's Δ"
    else:
        primary = "none here (the table has no two arms to compare)"
    return STATISTICS_NOTE.format(tests=table.tests, primary=primary)


STATISTICS_NOTE = (
    "Cells: mean ± half-width of the 95% t-interval over seeds. Δ rows: mean of per-seed paired differences "
    "(same split, model and seed) ± its 95% t-interval; p (Holm): a two-sided paired t-test over seeds, "
    "Holm-corrected within its family: each comparison's cells over every split and model form one family, and "
    "the primary family, named before any result, is {primary} (the correction pooled "
    "over all {tests} Δ cells of the table is given below as secondary). * marks p < 0.05 after the family's "
    "correction. The intervals are per cell and not corrected. They cover the seed-to-seed variation of "
    "training (initialisation, batch order, dropout) on one fixed data split (seed 123), not the variation "
    "between data splits or datasets. Avg rows average each dataset's splits, then the datasets, as the paper.")
