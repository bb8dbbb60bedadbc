"""Which parts of a model a method makes domain-specific, read from the seams its parts plug into (not from a
hand-kept list), so the methods guide's scope table is generated and cannot drift from the code.

A part in a tower makes the tower domain-specific; a model part that rescales the embeddings reaches every
branch through them; an output part weighs the output layer's input and every logit term per domain; a part
that scores rows itself (Separate) makes everything domain-specific. What no seam reaches stays domain-blind:
on parallel backbones, the branches beside the tower (FM, cross network, CIN, attention) and the linear term.
"""

from __future__ import annotations

from moe_mlora.adapters import towers_of
from moe_mlora.features import FeatureSpec
from moe_mlora.layers.domain_part import ModelPart

# Each backbone's branches beside its MLP tower, by what the tower's output meets in the output layer.
BRANCHES = {"deepfm": ("FM",), "dcn": ("cross network",), "xdeepfm": ("CIN",), "autoint": ("attention",)}
_SPEC = FeatureSpec(("user_id", "item_id", "domain"), (5, 5, 2), ("a", "b"))


def scope(arm: str, backbone: str) -> tuple[list[str], list[str]]:
    """(the domain-specific parts, the domain-blind parts) of `arm` ('star[output=domain]') on `backbone`."""
    from moe_mlora.methods.registry import get_method
    from moe_mlora.models import build_model
    from moe_mlora.training.approaches import ApproachConfig

    approach = ApproachConfig.from_arm(arm)
    model = build_model(backbone, _SPEC, dnn_hidden=(4, 4))
    get_method(approach.approach).plug_into(model, _SPEC.n_domains, 0, approach)
    part = model.domain_part
    if part is not None and part.scores_rows:
        return ["everything (a model per domain)"], []
    specific = []
    through_embeddings = part is not None and type(part).embeddings is not ModelPart.embeddings
    if through_embeddings:
        specific.append("embeddings (so every branch's input)")
    if any(tower.adapter is not None for tower in towers_of(model)):
        specific.append("tower")
    if model.output_part is not None:
        specific.append("output layer and every logit term (weighted per domain)")
    if part is not None and type(part).extra_logit is not ModelPart.extra_logit:
        specific.append("a logit of its own")
    if model.output_part is not None:
        return specific, []
    blind = ["output layer", *([] if through_embeddings else BRANCHES.get(backbone, ()))]
    return specific, blind + (["linear term"] if model.uses_linear_term else [])  # its weights see no embedding


def scope_markdown(arms: list[str], backbones: list[str]) -> str:
    """A table: each arm's domain-specific parts, and on each backbone what stays domain-blind."""
    lines = ["| method | domain-specific | " + " | ".join(f"shared on {b}" for b in backbones) + " |",
             "|---|---|" + "---|" * len(backbones)]
    for arm in arms:
        specific = scope(arm, backbones[0])[0]
        blind = [", ".join(scope(arm, backbone)[1]) or "nothing" for backbone in backbones]
        lines.append(f"| `{arm}` | {', '.join(specific) or 'nothing'} | " + " | ".join(blind) + " |")
    return "\n".join(lines)


GUIDE_BACKBONES = ("dnn", "deepfm", "dcn", "xdeepfm", "autoint")


def guide_arms() -> list[str]:
    """Every registered method but Base, then the per-domain-output form of each method that has one."""
    from dataclasses import fields

    from moe_mlora.methods.registry import METHODS

    with_output = [name for name, method in METHODS.items()
                   if method.settings is not None and "output" in {f.name for f in fields(method.settings)}]
    return [name for name in METHODS if name != "base"] + [f"{name}[output=domain]" for name in with_output]


def guide_table() -> str:
    """The scope table of the methods guide (docs/guides/methods.md; a test keeps the page equal to it)."""
    return scope_markdown(guide_arms(), list(GUIDE_BACKBONES))
