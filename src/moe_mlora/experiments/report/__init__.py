"""Tables and plots from recorded runs, in the paper's layout, with statistics a referee accepts.

Table 1: test WAUC (%) per split x arm x model, mean +/- 95% confidence interval (t, over seeds). Rows
Delta compare MoE-MLoRA (and any variant arm) with Base and with MLoRA: the mean of per-seed paired
differences (same split, model and seed, so the same data split and initial backbone), its 95% CI, and
a paired t-test over seeds whose p-values are Holm-corrected across every Delta cell of the table (the
family is the table). Column Avg averages the models; row Avg(Delta) averages each dataset's splits,
then the datasets, as the paper does. The ablation table does the same for the MoE-MLoRA variants
against Base. Figure 2 plots MoE-MLoRA WAUC against the total number of experts.

The report is a package, one concern per module: frame (records as a table), table1, paper, experts,
methods, patience, write. Its names are importable from here as before."""

from __future__ import annotations

from moe_mlora.experiments.report.frame import (  # noqa: F401
    _diagnostic_columns, mean_of, p_text, paper_order, signed, ARM_NAMES, AUTHORS_ARM, conditions_label, DEFAULT_CONDITIONS, load_records, markdown_table, model_order, numerics_label, PAPER_ARMS,
)
from moe_mlora.experiments.report.table1 import (  # noqa: F401
    _holm_correct, stars, ablation_table, build_table1, claims_of, Comparison, comparison_name, complete_arms, default_comparisons, families_summary, main_conditions, MIN_SEEDS, mixed_machine_cells, other_conditions_table, other_methods, paired_delta, paper_moe_arm, significant_deltas, statistics_note, STATISTICS_NOTE, Table1, table1_markdown, what_wins_where,
)
from moe_mlora.experiments.report.paper import (  # noqa: F401
    conditions_gap_markdown, paper_claims_markdown, paper_comparison_markdown, paper_key, PAPER_TABLE1, paper_value,
)
from moe_mlora.experiments.report.experts import (  # noqa: F401
    diagnostics_frame, experts_frame, experts_split, path_labels, plot_experts,
)
from moe_mlora.experiments.report.methods import (  # noqa: F401
    method_deltas, methods_section, parameter_markdown, plot_method_deltas, variants_markdown,
)
from moe_mlora.experiments.report.patience import (  # noqa: F401
    patience_markdown,
)
from moe_mlora.experiments.report.write import (  # noqa: F401
    _provenance, write_report,
)
