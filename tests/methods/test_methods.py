"""Every registered method through common checks, on three backbones: its parts are found by structure,
every part learns, rows go by their own domain and never by their batch-mates, export scores as predict."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from helpers import toy_parts
from moe_mlora.batches import TensorPart
from moe_mlora.features import FeatureSpec
from moe_mlora.layers.domain_part import backbone_parameters, domain_parts, method_parameters
from moe_mlora.methods import METHODS, PAPER_METHODS
from moe_mlora.models import build_model
from moe_mlora.serving.export import export_model
from moe_mlora.training.approaches import ApproachConfig, train_approach
from moe_mlora.training.checkpoint import _backbone_state
from moe_mlora.training.config import TrainConfig
from moe_mlora.training.evaluation import predict_logits

SPEC = FeatureSpec(("user_id", "item_id", "domain"), (40, 30, 3), ("a", "b", "c"))
OTHER_METHODS = [name for name in METHODS if name not in PAPER_METHODS]
# The methods whose towers can end in each domain's own output unit, in that form: through every common check too.
DOMAIN_OUTPUT = [f"{name}[output=domain]" for name in ("shared-bottom", "mmoe", "ple", "star")]
STAR_ABLATED = "star[auxiliary-width=0,domain-weights=offset,normalisation=none]"  # every ablation of STAR at once
CASES = OTHER_METHODS + DOMAIN_OUTPUT + ["ple[levels=3]", STAR_ABLATED]
BACKBONES = ["deepfm", "dcn", "autoint"]
HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))


def with_method(method: str, backbone: str = "deepfm", spec: FeatureSpec = SPEC, perturb: bool = True):
    """A model with the method's parts attached; perturbed, so that every part matters to the output."""
    torch.manual_seed(0)
    model = build_model(backbone, spec, dnn_hidden=(30, 17, 6))
    approach = ApproachConfig.from_arm(method)
    METHODS[approach.approach].attach(model, spec.n_domains, 1, approach)
    if perturb:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for parameter in method_parameters(model):
                parameter.add_(torch.randn(parameter.shape, generator=g) * 0.3)
    return model


def rows(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, c, (n,), generator=g) for c in SPEC.cardinalities], dim=1)
    return codes, codes[:, -1].clone()


def test_every_method_other_than_the_papers_is_registered_with_a_title_and_a_reference():
    assert {"shared-bottom", "mmoe", "ple", "star", "epnet", "ppnet", "pepnet"} <= set(OTHER_METHODS)
    assert all(METHODS[name].title and METHODS[name].reference and METHODS[name].attach for name in OTHER_METHODS)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("method", CASES)
def test_a_methods_parts_are_found_by_structure_and_every_one_of_them_learns(method, backbone):
    model = with_method(method, backbone)
    assert domain_parts(model), "the method attached no part"
    owned = {id(p) for p in method_parameters(model)}
    assert owned and len(owned) + len(backbone_parameters(model)) == len(list(model.parameters()))
    fresh = build_model(backbone, SPEC, dnn_hidden=(30, 17, 6))
    assert set(_backbone_state(model)) == set(fresh.state_dict()), "the backbone file would hold a part's tensor"
    codes, domains = rows(64)
    model.train()
    torch.nn.functional.binary_cross_entropy_with_logits(model(codes, domains), torch.rand(64).round()).backward()
    silent = [name for name, p in model.named_parameters() if id(p) in owned and (p.grad is None or not p.grad.any())]
    assert not silent, f"parts without a gradient: {silent}"


@pytest.mark.parametrize("method", CASES)
def test_attaching_a_method_leaves_the_global_random_stream_alone(method):
    model = build_model("deepfm", SPEC)
    state = torch.get_rng_state()
    approach = ApproachConfig.from_arm(method)
    METHODS[approach.approach].attach(model, SPEC.n_domains, 1, approach)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("method", CASES)
def test_a_row_is_scored_by_its_own_domain_and_never_by_its_batch_mates(method):
    model = with_method(method).double().eval()  # float64: a batch-mate's influence, not rounding, would show
    codes, domains = rows(57)
    with torch.no_grad():
        together = model(codes, domains)
        alone = torch.cat([model(codes[i:i + 1], domains[i:i + 1]) for i in range(57)])
        moved = model(codes, (domains + 1) % 3)  # the domain feature stays: only the routing changes
    torch.testing.assert_close(alone, together, rtol=1e-9, atol=1e-9)
    assert (moved - together).abs().max() > 1e-4, "the row's domain does not reach its score"


# Every registered method on the three backbones; a method's variants (other settings) on DeepFM and DCN, the
# parallel backbones whose FM / cross terms a per-domain output reaches.
EXPORT_CASES = [(case, backbone) for case in CASES for backbone in (BACKBONES if case in OTHER_METHODS else BACKBONES[:2])]


@pytest.mark.parametrize("method, backbone", EXPORT_CASES)
def test_an_exported_graph_scores_as_predict_does(method, backbone, tmp_path):
    model = with_method(method, backbone).eval()
    program = torch.export.load(str(export_model(model, tmp_path / "m.pt2", "torch-export"))).module()
    for n in (1, 57):
        codes, domains = rows(n, seed=n)
        expected = torch.sigmoid(predict_logits(model, TensorPart(codes, domains, torch.zeros(n)))).numpy()
        np.testing.assert_allclose(program(codes, domains).detach().numpy(), expected, rtol=0, atol=1e-5)


def toy_run(method: str):
    spec, train, valid, _ = toy_parts(n_rows=3000)
    torch.manual_seed(0)
    model = build_model("deepfm", spec, dnn_hidden=(32, 16))
    config = TrainConfig(learning_rate=1e-2, max_epochs=3, patience=3, batch_size=256, progress=False)
    return train_approach(model, train, valid, spec.domain_names, ApproachConfig.from_arm(method), config)


@pytest.fixture(scope="module")
def base_wauc():
    return toy_run("base").valid.wauc


# ONNX is converted from the torch.export graph, whose parity every case x backbone above checks; here each case's
# ops through the ONNX exporter and onnxruntime once, on a backbone that rotates over the three.
ONNX_CASES = [(case, BACKBONES[index % len(BACKBONES)]) for index, case in enumerate(CASES)]


@pytest.mark.skipif(not HAS_ONNX, reason="the onnx extra is not installed (pip install 'moe-mlora[onnx]')")
@pytest.mark.parametrize("method, backbone", ONNX_CASES)
def test_an_onnx_graph_on_onnxruntime_scores_as_predict_does(method, backbone, tmp_path):
    import onnxruntime

    model = with_method(method, backbone).eval()
    session = onnxruntime.InferenceSession(str(export_model(model, tmp_path / "m.onnx", "onnx")))
    for n in (1, 57):
        codes, domains = rows(n, seed=n)
        expected = torch.sigmoid(predict_logits(model, TensorPart(codes, domains, torch.zeros(n)))).numpy()
        (probability,) = session.run(None, {"codes": codes.numpy(), "domains": domains.numpy()})
        np.testing.assert_allclose(probability, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", CASES)
def test_every_method_trains_in_one_joint_phase_about_as_well_as_base_on_a_toy_problem(method, base_wauc):
    report = toy_run(method)
    assert [p.phase for p in report.phases] == ["joint"]
    assert report.valid.wauc > max(0.6, base_wauc - 0.05), f"{method}: valid WAUC {report.valid.wauc:.3f}, Base {base_wauc:.3f}"


@pytest.mark.parametrize("method", ["base", *OTHER_METHODS])
def test_lora_settings_on_a_method_without_lora_adapters_are_a_one_line_error(method):
    from moe_mlora.errors import ConfigError

    with pytest.raises(ConfigError, match="apply to mlora and moe-mlora"):
        ApproachConfig(method, rank=4)


@pytest.mark.parametrize("method", [m for m in CASES if METHODS[ApproachConfig.from_arm(m).approach].grows
                                    and "levels" not in m])
def test_growing_a_method_by_a_domain_keeps_the_old_domains_scores_through_training(method):
    from moe_mlora.serving.add_domain import extend_model, new_rows_masks
    from moe_mlora.training.phase import Trains, phase_parameters, set_trainable

    model = with_method(method).eval()
    codes, domains = rows(57)
    with torch.no_grad():
        before = model(codes, domains)
    grown, new_id = extend_model(model, [0.5, 0.3, 0.2], "d", ApproachConfig.from_arm(method), 1)
    trainable = phase_parameters(grown, Trains.ADDED_DOMAIN)
    set_trainable(grown, trainable)
    hooks = [p.register_hook(lambda grad, keep=keep: grad * keep) for p, keep in new_rows_masks(grown, new_id)]
    optimizer = torch.optim.Adam(trainable, lr=0.1)
    new_codes = codes.clone()
    new_codes[:, -1] = new_id
    grown.train()
    for _ in range(3):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            grown(new_codes, torch.full((57,), new_id)), torch.rand(57).round())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for hook in hooks:
        hook.remove()
    grown.eval()
    with torch.no_grad():
        torch.testing.assert_close(grown(codes, domains), before, rtol=0, atol=1e-6)
        assert torch.isfinite(grown(new_codes, torch.full((57,), new_id))).all()
    assert any(id(p) in {id(q) for q in method_parameters(grown)} for p in trainable), "no part of the new domain trains"



def _train_twice_state(method: str, threads: int) -> list[dict]:
    """Train the method twice from the same seed with `threads` CPU threads; the two final states."""
    from helpers import toy_parts
    from moe_mlora.training.config import torch_threads

    spec, train, valid, _ = toy_parts(n_rows=6000)
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("deepfm", spec, dnn_hidden=(256, 128))
        config = TrainConfig(max_epochs=1, batch_size=2048, progress=False, seed=3, threads=threads)
        with torch_threads(threads):
            train_approach(model, train, valid, spec.domain_names, ApproachConfig.from_arm(method), config)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    return states


# Every method at 1 and 2 threads; the per-domain-output forms add one index_select path, checked at 2 threads.
REPEAT_CASES = [(method, threads) for method in METHODS for threads in (1, 2)] + [(arm, 2) for arm in DOMAIN_OUTPUT]


@pytest.mark.parametrize("method, threads", REPEAT_CASES)
def test_every_method_repeats_bitwise_at_one_and_two_threads(method, threads, every_core):
    first, second = _train_twice_state(method, threads)
    differ = [k for k in first if not torch.equal(first[k], second[k])]
    assert not differ, f"{method} at {threads} threads: {differ[:5]} differ between two identical runs"


def test_stars_robust_normalisation_keeps_a_single_row_domains_features_and_its_running_variance_unbiased():
    from moe_mlora.methods.star import PartitionedNorm

    torch.manual_seed(0)
    rows = torch.randn(9, 5) * 3 + 1
    domains = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2])  # domain 2 has one row in this batch
    batch, robust = PartitionedNorm(3, 5).train(), PartitionedNorm(3, 5, robust=True).train()
    lost = batch(rows, domains)[8]
    assert torch.allclose(lost, torch.zeros(5))  # the old rule: the row's features are gone (beta + beta_d = 0)
    kept = robust(rows, domains)[8]
    assert torch.allclose(kept, rows[8] / torch.sqrt(torch.tensor(1 + 1e-5)))  # running moments (0, 1) at the start
    assert torch.equal(robust.running_var[2], torch.ones(5))  # one row says nothing of a variance: not updated
    first = rows[:4]
    expected = 1 + 0.1 * (first.var(dim=0, unbiased=True) - 1)
    assert torch.allclose(robust.running_var[0], expected)  # unbiased in-batch variance, as torch's BatchNorm
    assert torch.allclose(batch.running_var[0], 1 + 0.1 * (first.var(dim=0, unbiased=False) - 1))


def test_stars_grouped_training_path_computes_what_its_exportable_every_domain_path_does():
    from moe_mlora.layers.mlp import Tower
    from moe_mlora.methods.star import StarTower

    torch.manual_seed(0)
    tower = Tower(12, (16, 8), dropout=0.0)
    part = tower.adapter = StarTower(5, tower.layer_shapes)
    with torch.no_grad():
        for parameter in part.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.3)
    hidden, domains = torch.randn(64, 12), torch.tensor([4, 0, 4, 2] * 16)  # domains 1 and 3 absent
    grouped, every = part.grouped(tower, hidden, domains), part.every_domain(tower, hidden, domains)
    assert torch.allclose(grouped, every, atol=1e-6)
    grouped.sum().backward()
    assert part.weights[0].grad[1].abs().sum() == 0 and part.weights[0].grad[4].abs().sum() > 0  # only present domains


def test_ples_grouped_training_path_computes_what_its_exportable_every_domain_path_does():
    from moe_mlora.methods.ple import ProgressiveExperts

    torch.manual_seed(0)
    part = ProgressiveExperts(5, [(12, 16), (16, 8)], dropout=0.0, specific=3)
    inputs, domains = torch.randn(64, 12), torch.tensor([4, 0, 4, 2] * 16)  # domains 1 and 3 absent
    grouped, every = part.own_grouped(inputs, domains), part.own_every_domain(inputs, domains)
    assert grouped.shape == (64, 3, 8) and torch.allclose(grouped, every, atol=1e-6)
    grouped.sum().backward()
    first = part.experts.weights[0].grad
    assert first[3:6].abs().sum() == 0 and first[12:15].abs().sum() > 0  # domain 1's experts idle, domain 4's trained


PERSONAL = {"prior": "fields", "prior_fields": ["user_id", "item_id"]}


def with_personal_prior(method: str, backbone: str = "deepfm"):
    torch.manual_seed(0)
    model = build_model(backbone, SPEC, dnn_hidden=(30, 17, 6))
    METHODS[method].attach(model, SPEC.n_domains, 1, ApproachConfig(method, method_settings=PERSONAL))
    return model


@pytest.mark.parametrize("method", ["ppnet", "pepnet"])
def test_the_personal_prior_embeds_the_rows_own_ids_and_its_embeddings_learn(method):
    model = with_personal_prior(method)
    towers = [part for _, part in domain_parts(model) if hasattr(part, "prior_embeddings")]
    assert towers and all(len(part.prior_embeddings) == 2 for part in towers)
    codes, domains = rows(64)
    model.train()
    torch.nn.functional.binary_cross_entropy_with_logits(model(codes, domains), torch.rand(64).round()).backward()
    for part in towers:
        for table, field in zip(part.prior_embeddings, (0, 1)):
            touched = torch.nonzero(table.weight.grad.abs().sum(1)).squeeze(1)
            ids = set(codes[:, field].tolist())  # only the rows' own ids get gradient (a row whose gated units are all
            assert set(touched.tolist()) <= ids and len(touched) >= len(ids) // 2  # off passes none, hence <=)
    # a user's prior changes that user's score only: another user's row scores as before
    model.eval()
    before = model(codes, domains).detach()
    with torch.no_grad():
        towers[0].prior_embeddings[0].weight[codes[0, 0]] += 1.0
    after = model(codes, domains).detach()
    same_user = codes[:, 0] == codes[0, 0]
    assert torch.equal(after[~same_user], before[~same_user]) and not torch.equal(after[same_user], before[same_user])


def test_a_prior_field_the_data_does_not_have_is_a_one_line_error():
    from moe_mlora.errors import ConfigError

    model = build_model("deepfm", SPEC, dnn_hidden=(30, 17, 6))
    with pytest.raises(ConfigError, match=r"ppnet prior field\(s\) \['author_id'\] are not fields of this data"):
        METHODS["ppnet"].attach(model, SPEC.n_domains, 1, ApproachConfig("ppnet", method_settings={
            "prior": "fields", "prior_fields": ["author_id"]}))


@pytest.mark.parametrize("method", ["ppnet", "pepnet"])
def test_the_personal_prior_exports_and_scores_as_predict_does(method, tmp_path):
    model = with_personal_prior(method).eval()
    program = torch.export.load(str(export_model(model, tmp_path / "m.pt2", "torch-export"))).module()
    for n in (1, 57):
        codes, domains = rows(n, seed=n)
        expected = torch.sigmoid(predict_logits(model, TensorPart(codes, domains, torch.zeros(n)))).numpy()
        np.testing.assert_allclose(program(codes, domains).detach().numpy(), expected, rtol=0, atol=1e-5)
    if HAS_ONNX:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(export_model(model, tmp_path / "m.onnx", "onnx")))
        codes, domains = rows(57, seed=5)
        expected = torch.sigmoid(predict_logits(model, TensorPart(codes, domains, torch.zeros(57)))).numpy()
        (probability,) = session.run(None, {"codes": codes.numpy(), "domains": domains.numpy()})
        np.testing.assert_allclose(probability, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["epnet", "ppnet", "star", "moe-mlora"])
def test_part_embeddings_like_fields_start_a_methods_own_embeddings_as_the_fields_start(method):
    from torch import nn

    def embedding_stds(part_embeddings: str) -> tuple[list[float], bool]:
        model = build_model("deepfm", SPEC, dnn_hidden=(30, 17, 6))
        state = torch.get_rng_state()
        METHODS[method].plug_into(model, SPEC.n_domains, 1, ApproachConfig(method, part_embeddings=part_embeddings))
        stds = [float(module.weight.std()) for _, part in domain_parts(model) for module in part.modules()
                if isinstance(module, nn.Embedding)]
        return stds, torch.equal(torch.get_rng_state(), state)

    (torch_start, _), (like_fields, stream_kept) = embedding_stds("torch"), embedding_stds("like-fields")
    assert torch_start and all(std > 0.3 for std in torch_start)  # N(0, 1), as the shipped records ran
    assert all(std < 0.03 for std in like_fields)  # N(0, 0.01), the field embeddings' std
    assert stream_kept  # redrawn from a seed of the run's: the batches and dropout that follow are Base's


@pytest.mark.parametrize("backbone", ["deepfm", "dcn"])
@pytest.mark.parametrize("method", DOMAIN_OUTPUT)
def test_with_a_per_domain_output_a_domains_logit_moves_only_through_its_own_output_unit_and_the_shared_parts(
        method, backbone):
    model = with_method(method, backbone)
    model.train()
    codes, domains = rows(90)
    logits = model(codes, domains)
    unit = model.output_part
    for domain in range(3):
        grads = torch.autograd.grad(logits[domains == domain].sum(), [unit.weights, unit.term_weights, unit.biases],
                                    retain_graph=True)
        for grad in grads:
            assert grad[domain].abs().sum() > 0, f"domain {domain}'s own output unit gets no gradient"
            others = [d for d in range(3) if d != domain]
            assert torch.equal(grad[others], torch.zeros_like(grad[others])), "another domain's unit moved its logit"
    # the shared parallel branch reaches the logit through the domain's unit: DeepFM's FM term (no weights of its
    # own: its inputs, the embeddings) and DCN's cross network
    shared = model.cross.kernels if backbone == "dcn" else model.embedding.table.weight
    assert torch.autograd.grad(logits[domains == 0].sum(), shared, retain_graph=True)[0].abs().sum() > 0


def test_with_a_per_domain_output_deepfms_fm_term_is_weighed_by_each_domain_alone():
    """The oracle: setting domain 0's weight on the FM term to 0 takes exactly the FM term off domain 0's rows'
    logits and leaves every other row's logit as it was."""
    model = with_method("star[output=domain]").eval()
    codes, domains = rows(60)
    with torch.no_grad():
        before = model(codes, domains)
        fm = model.fm(model.domain_part.embeddings(model.embedding(codes), domains))
        weight = model.output_part.term_weights[0, model.logit_term_names.index("fm")].item()
        model.output_part.term_weights[0, model.logit_term_names.index("fm")] = 0.0
        after = model(codes, domains)
    mine = domains == 0
    torch.testing.assert_close(after[mine], before[mine] - weight * fm[mine], rtol=0, atol=1e-5)
    assert torch.equal(after[~mine], before[~mine])


def test_a_fresh_star_output_unit_computes_the_backbones_shared_output():
    """STAR's output layer is star-shaped (w_shared * w_d, w_d at ones): unperturbed, output=domain scores as
    output=shared does; the other methods' own units are fresh draws and do not."""
    codes, domains = rows(40)
    scores = {}
    for arm in ("star", "star[output=domain]", "mmoe", "mmoe[output=domain]"):
        scores[arm] = with_method(arm, perturb=False).eval()(codes, domains).detach()
    torch.testing.assert_close(scores["star[output=domain]"], scores["star"], rtol=0, atol=1e-6)
    assert (scores["mmoe[output=domain]"] - scores["mmoe"]).abs().max() > 1e-4


def test_an_arm_with_settings_names_its_method_and_settings_and_comes_back_from_its_name():
    for arm in ("star[output=domain]", "mmoe[experts=4,output=domain]", "ple[specific-experts=3]", "base",
                "moe-mlora[authors-code]", "moe-mlora[selection=trained]"):
        assert ApproachConfig.from_arm(arm).arm == arm
    from moe_mlora.errors import ConfigError

    for bad, message in (("star[output=both]", "output must be one of"), ("star[foo=1]", "no setting of star"),
                         ("mmoe[experts=x]", "takes a number"), ("nope", "unknown approach")):
        with pytest.raises(ConfigError, match=message):
            ApproachConfig.from_arm(bad)


def test_ple_levels_compute_the_papers_progressive_extraction_row_by_row():
    """The oracle: a loop over rows, domains and experts, written from the paper's equations, against the batched
    levels (three levels, so a deeper level's shared gate is exercised too)."""
    model = with_method("ple[levels=3]", "dnn").eval()
    tower = model.tower
    part = tower.adapter
    codes, domains = rows(7)
    inputs = model.embedding(codes).flatten(1)
    n, k = part.n_domains, part.specific
    with torch.no_grad():
        batched = part.every_level(tower, inputs)
        for row in range(7):
            x = inputs[row:row + 1]
            specific = [part.experts.forward_slice(x, e, 1)[0, 0] for e in range(n * k)]
            shared = tower.plain_forward(x)[0]
            logits = part.gates.logits(x).view(n, k + 1)
            domain_in, shared_in = None, x[0]
            for level in range(3):
                if level:
                    deeper = part.deeper[level - 1]
                    w, b = deeper.experts.weights[0], deeper.experts.biases[0]
                    specific = [torch.relu(domain_in[e // k] @ w[e] + b[e]) for e in range(n * k)]
                    shared = deeper.shared(shared_in.unsqueeze(0))[0, 0]
                    logits = torch.stack([domain_in[d] @ deeper.gate_weights[d] + deeper.gate_biases[d] for d in range(n)])
                outputs = []
                for d in range(n):
                    weights = torch.softmax(logits[d], 0)
                    outputs.append(sum(weights[j] * specific[d * k + j] for j in range(k)) + weights[k] * shared)
                if level < 2:
                    weights = torch.softmax(part.shared_gates[level](shared_in.unsqueeze(0))[0], 0)
                    shared_in = sum(weights[e] * specific[e] for e in range(n * k)) + weights[n * k] * shared
                domain_in = torch.stack(outputs)
            torch.testing.assert_close(batched[row], domain_in, rtol=1e-5, atol=1e-5)


def test_ple_with_more_than_one_level_refuses_a_new_domain_in_one_line():
    from moe_mlora.errors import ConfigError
    from moe_mlora.serving.add_domain import extend_model

    with pytest.raises(ConfigError, match="PLE with 2 levels has no growth rule"):
        extend_model(with_method("ple[levels=2]"), [0.5, 0.3, 0.2], "d", ApproachConfig.from_arm("ple[levels=2]"), 1)


def test_stars_ablations_take_out_what_they_name_and_the_offset_form_starts_where_the_product_form_does():
    codes, domains = rows(40)
    ablated = with_method(STAR_ABLATED, perturb=False)
    assert ablated.domain_part is None and ablated.tower.adapter.norm is None
    product = with_method("star[normalisation=none,auxiliary-width=0]", perturb=False).eval()
    torch.testing.assert_close(ablated.eval()(codes, domains), product(codes, domains), rtol=0, atol=1e-6)
    assert not ablated.tower.adapter.weights[0].any(), "offsets start at 0 (w_d = 1 + v_d = 1)"


@pytest.mark.parametrize("method", ["shared-bottom", "mmoe", "ple", "hamur"])
def test_per_domain_towers_trained_grouped_by_domain_compute_what_the_exportable_path_does(method):
    """Training runs each row through its own domain's tower only (grouped); inference runs every domain's tower
    on every row and picks. Without dropout (and with HAMUR's norm frozen) the two must agree."""
    model = with_method(method, "deepfm")
    for module in model.modules():
        if hasattr(module, "p"):
            module.p = 0.0
    codes, domains = rows(50)
    model.train()
    if method == "hamur":
        model.tower.adapter.norm.eval()
    grouped = model(codes, domains)
    model.eval()
    torch.testing.assert_close(grouped, model(codes, domains), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["apg", "m2m"])
def test_the_new_methods_domain_embeddings_start_like_the_field_embeddings(method):
    model = with_method(method, perturb=False)
    std = float(model.tower.adapter.domain_embedding.weight.std())
    assert std < 5 * model.config.embedding_init_std, f"{method}'s domain embedding starts at std {std:.3g}"
