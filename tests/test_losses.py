"""The loss API and the identities that tie every variant to plain cross-entropy."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from helpers import CONF, make_cfg, train_cli
from trainer.config import validate
from trainer.errors import ConfigError
from trainer.models.losses import build_loss, class_weights, posthoc_adjust
from trainer.run import run
from trainer.train import loop

torch.manual_seed(0)
LOGITS = torch.randn(64, 5, dtype=torch.float64) * 3
TARGET = torch.randint(0, 5, (64,))
COUNTS = [100, 50, 20, 5, 1]


def loss_of(*overrides: str, counts=COUNTS):
    return build_loss(make_cfg(*overrides).loss, counts)


def test_plain_is_cross_entropy():
    assert torch.allclose(loss_of("loss=plain")(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET))


def test_focal_with_gamma_zero_is_cross_entropy():
    assert torch.allclose(loss_of("loss=focal", "loss.gamma=0")(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET))


def test_label_smoothing_zero_is_cross_entropy_and_nonzero_matches_torch():
    ce = F.cross_entropy(LOGITS, TARGET)
    assert torch.allclose(loss_of("loss=label_smoothed", "loss.smoothing=0")(LOGITS, TARGET), ce)
    smoothed = loss_of("loss=label_smoothed", "loss.smoothing=0.2")(LOGITS, TARGET)
    assert torch.allclose(smoothed, F.cross_entropy(LOGITS, TARGET, label_smoothing=0.2))
    assert not torch.allclose(smoothed, ce)


def test_uniform_counts_give_unit_weights_and_plain_cross_entropy():
    for scheme in ("inverse", "inverse_sqrt", "effective_number"):
        loss = loss_of("loss=weighted", f"loss.scheme={scheme}", counts=[30] * 5)
        assert torch.allclose(loss.weight, torch.ones(5))
        assert torch.allclose(loss(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET))


@pytest.mark.parametrize("scheme,raw", [
    ("inverse", lambda n: 1 / n),
    ("inverse_sqrt", lambda n: n ** -0.5),
    ("effective_number", lambda n: (1 - 0.999) / (1 - 0.999 ** n)),
])
def test_weight_schemes_follow_their_formula_and_sum_to_num_classes(scheme, raw):
    w = class_weights(COUNTS, scheme, 0.999)
    n = torch.tensor(COUNTS, dtype=torch.float64)
    expected = raw(n) * len(COUNTS) / raw(n).sum()
    assert torch.allclose(w.double(), expected, atol=1e-6)
    assert w.sum().item() == pytest.approx(len(COUNTS), rel=1e-6)
    assert (w[:-1] <= w[1:]).all(), "rarer classes weigh more"


def test_weighted_mean_divides_by_the_sum_of_target_weights():
    loss = loss_of("loss=weighted", "loss.scheme=inverse")
    w = loss.weight.double()
    per_sample = -F.log_softmax(LOGITS, -1).gather(1, TARGET[:, None]).squeeze(1)
    expected = (w[TARGET] * per_sample).sum() / w[TARGET].sum()
    assert torch.allclose(loss(LOGITS, TARGET), expected)


def test_absent_class_gets_a_finite_weight():
    w = class_weights([10, 0, 5], "inverse")
    assert torch.isfinite(w).all()


def test_focal_follows_its_formula():
    loss = loss_of("loss=focal", "loss.gamma=2", "loss.alpha=[1,2,3,4,5]")
    p = F.softmax(LOGITS, -1).gather(1, TARGET[:, None]).squeeze(1)
    alpha = torch.tensor([1.0, 2, 3, 4, 5], dtype=torch.float64)
    expected = (-alpha[TARGET] * (1 - p) ** 2 * p.log()).mean()
    assert torch.allclose(loss(LOGITS, TARGET), expected)


def test_focal_balanced_alpha_is_inverse_frequency():
    loss = loss_of("loss=focal", "loss.alpha=balanced")
    assert torch.allclose(loss.alpha, class_weights(COUNTS, "inverse"))


def test_two_class_ce_equals_bce_with_logits_on_the_logit_difference():
    z = torch.randn(50, 2, dtype=torch.float64) * 4
    y = torch.randint(0, 2, (50,))
    bce = F.binary_cross_entropy_with_logits(z[:, 1] - z[:, 0], y.double())
    assert torch.allclose(loss_of("loss=plain", counts=[10, 3])(z, y), bce)


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (0.7, 1.0), (0.5, 0.0)])
def test_two_class_focal_matches_torchvision_sigmoid_focal_loss(alpha, gamma):
    z = torch.randn(50, 2, dtype=torch.float64) * 4
    y = torch.randint(0, 2, (50,))
    ours = loss_of("loss=focal", f"loss.gamma={gamma}", f"loss.alpha={alpha}", counts=[10, 3])(z, y)
    ref = sigmoid_focal_loss(z[:, 1] - z[:, 0], y.double(), alpha=alpha, gamma=gamma, reduction="mean")
    assert torch.allclose(ours, ref)


def test_focal_scalar_alpha_needs_two_classes_and_list_needs_one_per_class():
    with pytest.raises(ConfigError, match="loss.alpha"):
        loss_of("loss=focal", "loss.alpha=0.25")
    with pytest.raises(ConfigError, match="exactly 5"):
        loss_of("loss=focal", "loss.alpha=[1,2]")


@pytest.mark.parametrize("option", ["plain", "weighted", "label_smoothed", "focal"])
def test_every_variant_is_finite_with_finite_gradients_on_extreme_logits(option):
    loss = loss_of(f"loss={option}")
    z = torch.tensor([[1e4, -1e4, 0.0, 0.0, 0.0], [-1e4, 1e4, 0.0, 0.0, 0.0]], requires_grad=True)
    value = loss(z, torch.tensor([1, 1]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(z.grad).all()


# ---- the full library: every option of conf/loss/ ------------------------------------------------------------

VARIANTS = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
STABLE = [v for v in VARIANTS if v != "naive"]
# settings that switch on the parts a variant's default leaves off, so that they are checked too
EXTRA = {"class_balanced": [["loss.base=focal"]], "ldam": [["loss.drw_epoch=0"]], "naive": [["loss.clip=true"]],
         "label_smoothed": [["loss.scheme=inverse"]], "focal": [["loss.alpha=balanced"]]}
SETTINGS = [[f"loss={v}"] for v in VARIANTS] + [[f"loss={v}", *o] for v, extra in EXTRA.items() for o in extra]
STABLE_SETTINGS = [s for s in SETTINGS if s[0] != "loss=naive"]


def built(overrides, counts=COUNTS):
    loss = loss_of(*overrides, counts=counts)
    if hasattr(loss, "set_epoch"):
        loss.set_epoch(1)  # past drw_epoch=0: the deferred weights are on
    return loss


def ce(z=LOGITS, y=TARGET):
    return F.cross_entropy(z, y)


def test_every_design_variant_has_a_config_file():
    assert set(VARIANTS) == {"plain", "weighted", "label_smoothed", "focal", "class_balanced", "logit_adjusted",
                             "balanced_softmax", "ldam", "poly", "gce", "sce", "naive"}


@pytest.mark.parametrize("overrides", [
    ["loss=class_balanced", "loss.beta=0"],
    ["loss=class_balanced", "loss.beta=0", "loss.base=focal", "loss.gamma=0"],
    ["loss=logit_adjusted", "loss.tau=0"],
    ["loss=poly", "loss.epsilon=0"],
    ["loss=ldam", "loss.max_margin=0", "loss.scale=1"],
    ["loss=sce", "loss.alpha=1", "loss.beta=0"],
    ["loss=naive"],  # moderate logits: the textbook form is right where it does not break
], ids=lambda o: " ".join(o))
def test_identities_with_cross_entropy(overrides):
    assert torch.allclose(built(overrides)(LOGITS, TARGET), ce())


def test_logit_adjusted_with_a_uniform_prior_is_cross_entropy():
    loss = loss_of("loss=logit_adjusted", "loss.tau=1.5", counts=[40] * 5)
    assert torch.allclose(loss(LOGITS, TARGET), ce())


def test_logit_adjusted_follows_its_formula_and_balanced_softmax_is_its_tau_one():
    prior = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    la = loss_of("loss=logit_adjusted", "loss.tau=0.5")(LOGITS, TARGET)
    assert torch.allclose(la, ce(LOGITS + 0.5 * prior.log()), atol=1e-6)
    tau_one = loss_of("loss=logit_adjusted", "loss.tau=1")(LOGITS, TARGET)
    assert torch.allclose(loss_of("loss=balanced_softmax")(LOGITS, TARGET), tau_one, atol=1e-6)
    assert not torch.allclose(tau_one, ce())


def test_balanced_softmax_matches_the_authors_formula():
    # Ren et al.'s code: logits + sample_per_class.log(), then cross_entropy
    n = torch.tensor(COUNTS, dtype=torch.float64)
    assert torch.allclose(loss_of("loss=balanced_softmax")(LOGITS, TARGET), ce(LOGITS + n.log()), atol=1e-6)


def test_gce_tends_to_cross_entropy_as_q_goes_to_zero_and_follows_its_formula():
    gaps = [abs(loss_of("loss=gce", f"loss.q={q}")(LOGITS, TARGET) - ce()).item() for q in (0.1, 1e-3, 1e-6)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-4 * ce().item()
    p = F.softmax(LOGITS, -1).gather(1, TARGET[:, None]).squeeze(1)
    assert torch.allclose(loss_of("loss=gce", "loss.q=0.7")(LOGITS, TARGET), ((1 - p ** 0.7) / 0.7).mean())


def test_poly_follows_its_formula():
    p = F.softmax(LOGITS, -1).gather(1, TARGET[:, None]).squeeze(1)
    assert torch.allclose(loss_of("loss=poly", "loss.epsilon=2")(LOGITS, TARGET), ce() + 2 * (1 - p).mean())


def test_sce_matches_the_authors_code():
    # Wang et al.'s SCELoss: ce + rce with rce = -sum(clamp(p, 1e-7, 1) * log(clamp(one_hot, 1e-4, 1)))
    p = F.softmax(LOGITS, -1).clamp(1e-7, 1.0)
    one_hot = F.one_hot(TARGET, 5).double().clamp(1e-4, 1.0)
    rce = -(p * one_hot.log()).sum(1)
    expected = 0.1 * ce() + 1.0 * rce.mean()
    assert torch.allclose(loss_of("loss=sce")(LOGITS, TARGET), expected, atol=1e-5)


def test_ldam_matches_the_authors_code():
    # Cao et al.'s LDAMLoss: m = 1/n^(1/4) scaled to max_m; x - m_y on the target logit; CE(s * x, weight)
    n = torch.tensor(COUNTS, dtype=torch.float64)
    m = 1.0 / n.sqrt().sqrt()
    m = m * (0.5 / m.max())
    index = F.one_hot(TARGET, 5).bool()
    out = torch.where(index, LOGITS - m[TARGET][:, None], LOGITS)
    assert torch.allclose(loss_of("loss=ldam")(LOGITS, TARGET), F.cross_entropy(30 * out, TARGET))
    beta = 0.9999
    w = (1 - beta) / (1 - beta ** n)
    w = w / w.sum() * 5
    drw = built(["loss=ldam", "loss.drw_epoch=0"])
    assert torch.allclose(drw(LOGITS, TARGET), F.cross_entropy(30 * out, TARGET, weight=w), atol=1e-6)


def test_ldam_margins_fall_as_the_fourth_root_of_the_counts():
    margins = loss_of("loss=ldam", "loss.max_margin=0.4").margins.double()
    n = torch.tensor(COUNTS, dtype=torch.float64)
    assert margins.max().item() == pytest.approx(0.4) and margins.argmax() == n.argmin()
    assert torch.allclose(margins * n ** 0.25, (margins * n ** 0.25)[0].expand(5), rtol=1e-5)


def test_class_balanced_uses_effective_number_weights_as_ce_or_focal():
    expected = class_weights(COUNTS, "effective_number", 0.99)
    cb = loss_of("loss=class_balanced", "loss.beta=0.99")
    assert torch.allclose(cb.weight, expected)
    assert torch.allclose(cb(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET, weight=expected.double()))
    focal = loss_of("loss=class_balanced", "loss.beta=0.99", "loss.base=focal", "loss.gamma=2")
    assert torch.allclose(focal.alpha, expected)
    assert torch.allclose(focal(LOGITS, TARGET), loss_of("loss=focal", "loss.gamma=2", "loss.alpha=" + str(
        expected.tolist()).replace(" ", ""))(LOGITS, TARGET))


def test_label_smoothing_with_weights_is_the_per_sample_weight_times_the_smoothed_cross_entropy():
    loss = loss_of("loss=label_smoothed", "loss.smoothing=0.2", "loss.scheme=inverse")
    w = class_weights(COUNTS, "inverse").double()
    q = 0.8 * F.one_hot(TARGET, 5).double() + 0.2 / 5
    per_sample = -(q * F.log_softmax(LOGITS, -1)).sum(1)  # README: w_y * -sum_c q_c log p_c, over sum w_y
    assert torch.allclose(loss(LOGITS, TARGET), (w[TARGET] * per_sample).sum() / w[TARGET].sum())
    unweighted = loss_of("loss=label_smoothed", "loss.smoothing=0.2")
    assert torch.allclose(unweighted(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET, label_smoothing=0.2))


def _optimum(loss_fn, target: int, classes: int = 3) -> torch.Tensor:
    """The softmax that minimises loss_fn on one sample of class target (LBFGS on its logits)."""
    z = torch.zeros(1, classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([z], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)
    y = torch.tensor([target])

    def closure():
        opt.zero_grad()
        value = loss_fn(z, y)
        value.backward()
        return value
    opt.step(closure)
    return torch.softmax(z.detach(), -1)[0]


@pytest.mark.parametrize("scheme", ["inverse", "inverse_sqrt", "effective_number"])
def test_a_weighted_label_smoothed_loss_is_minimised_at_the_smoothed_target(scheme):
    # with PyTorch's semantics, counts [100, 10, 1] put 0.73 of a class-0 sample's optimum on class 2
    counts, s = [100, 10, 1], 0.1
    loss = loss_of("loss=label_smoothed", f"loss.smoothing={s}", f"loss.scheme={scheme}", counts=counts)
    q = torch.tensor([1 - s + s / 3, s / 3, s / 3], dtype=torch.float64)
    for target in range(3):
        assert torch.allclose(_optimum(loss, target), q.roll(target), atol=1e-5)
    if scheme == "inverse":  # the property fails for PyTorch's weighted label smoothing: the test can tell
        w = class_weights(counts, "inverse").double()
        torch_optimum = _optimum(lambda z, y: F.cross_entropy(z, y, weight=w, label_smoothing=s), 0)
        assert torch_optimum[2] == pytest.approx(0.73, abs=0.01)


def test_posthoc_adjustment_subtracts_tau_log_prior_and_changes_predictions_toward_rare_classes():
    prior = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    adjusted = posthoc_adjust(LOGITS, COUNTS, 1.0)
    assert torch.allclose(adjusted, LOGITS - prior.log(), atol=1e-6)
    assert (adjusted.argmax(1) == 4).sum() > (LOGITS.argmax(1) == 4).sum()


@pytest.mark.parametrize("overrides", SETTINGS, ids=lambda o: " ".join(o))
def test_gradcheck_in_float64(overrides):
    loss = built(overrides)
    z = (torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2).requires_grad_()
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    assert torch.autograd.gradcheck(lambda logits: loss(logits, y), (z,))


def _extreme_cases(dtype):
    big = torch.tensor([[1e4, -1e4, 0.0, 3.0, -5.0], [-1e4, 1e4, 0.0, 0.0, 0.0], [1e4, 1e4, -1e4, 0.0, 0.0]],
                       dtype=dtype)
    return {
        "target on the largest logit": (big, torch.tensor([0, 1, 0])),
        "target on the smallest logit": (big, torch.tensor([1, 0, 2])),
        "a batch of one": (big[:1], torch.tensor([1])),
        "all logits -1e4": (torch.full((2, 5), -1e4, dtype=dtype), torch.tensor([0, 4])),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("overrides", STABLE_SETTINGS, ids=lambda o: " ".join(o))
def test_stable_on_logits_of_magnitude_1e4_with_an_absent_class(overrides, dtype):
    counts = [100, 50, 0, 5, 1]  # class 2 never seen in training, and targeted below
    loss = built(overrides, counts)
    for case, (z, y) in _extreme_cases(dtype).items():
        z = z.clone().requires_grad_()
        value = loss(z, y)
        value.backward()
        assert value.dtype == dtype
        assert torch.isfinite(value) and torch.isfinite(z.grad).all(), f"{case}: {value}, {z.grad}"


@pytest.mark.parametrize("overrides", SETTINGS, ids=lambda o: " ".join(o))
def test_float32_agrees_with_float64(overrides):
    loss = built(overrides)
    assert torch.allclose(loss(LOGITS.float(), TARGET).double(), loss(LOGITS, TARGET), rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA absent: run this test on a machine with a GPU")
@pytest.mark.parametrize("overrides", SETTINGS, ids=lambda o: " ".join(o))
def test_cuda_agrees_with_cpu(overrides):
    loss = built(overrides)
    z = LOGITS.float().cuda().requires_grad_()
    value = loss.cuda()(z, TARGET.cuda())
    value.backward()
    assert torch.isfinite(z.grad).all()
    assert torch.allclose(value.cpu().double(), built(overrides)(LOGITS, TARGET), rtol=1e-4)


def test_naive_saturates_at_minus_log_eps_where_the_stable_form_is_exact():
    z = torch.tensor([[0.0, -50.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1])
    naive = loss_of("loss=naive", counts=[5, 5])(z, y)
    stable = loss_of("loss=plain", counts=[5, 5])(z, y)
    assert naive.item() == pytest.approx(-math.log(1e-15), rel=1e-6)  # 34.54, whatever the true loss
    assert stable.item() == pytest.approx(50.0, rel=1e-9)
    (grad_naive,) = torch.autograd.grad(naive, z)
    clipped = loss_of("loss=naive", "loss.clip=true", counts=[5, 5])(z, y)
    (grad_clipped,) = torch.autograd.grad(clipped, z)
    (grad_stable,) = torch.autograd.grad(loss_of("loss=plain", counts=[5, 5])(z, y), z)
    assert grad_stable[0, 1].item() == pytest.approx(-1.0)  # p_y - 1: full learning signal
    assert abs(grad_naive[0, 1].item()) < 1e-6  # vanishes: p_y / eps
    assert grad_clipped.abs().max().item() == 0.0  # clipped: no signal at all


@pytest.mark.parametrize("clip", [False, True])
def test_naive_is_nan_on_large_logits_where_the_stable_form_is_finite(clip):
    z = torch.tensor([[100.0, 0.0, -3.0]])  # exp(100) overflows float32
    y = torch.tensor([0])
    naive = loss_of("loss=naive", f"loss.clip={str(clip).lower()}", counts=[5, 5, 5])(z, y)
    assert torch.isnan(naive)
    assert torch.isfinite(loss_of("loss=plain", counts=[5, 5, 5])(z, y))


def test_drw_switches_the_weights_on_after_exactly_drw_epoch_epochs():
    loss = loss_of("loss=ldam", "loss.drw_epoch=3")
    expected = class_weights(COUNTS, "effective_number", 0.9999)
    seen = {}
    for epoch in range(1, 6):
        loss.set_epoch(epoch)
        seen[epoch] = loss.weight
    assert all(seen[e] is None for e in (1, 2, 3))
    assert all(torch.equal(seen[e], expected) for e in (4, 5))
    loss.set_epoch(3)
    before = loss(LOGITS, TARGET)
    loss.set_epoch(4)
    assert not torch.allclose(before, loss(LOGITS, TARGET))
    assert loss_of("loss=ldam").weight is None  # drw_epoch null: never weighted


def test_the_training_loop_tells_the_loss_each_epoch():
    loss = loss_of("loss=ldam", "loss.drw_epoch=2", counts=[8, 4, 2])
    x = torch.randn(14, 3, generator=torch.Generator().manual_seed(0))
    data = loop.Tensors(x, torch.tensor([0] * 8 + [1] * 4 + [2] * 2))
    weighted = []
    model = nn.Linear(3, 3)
    loop.fit(model, loss, torch.optim.SGD(model.parameters(), lr=0.1), data, data, ["a", "b", "c"],
             loop.FitConfig(epochs=4, batch_size=8, patience=None, progress=False), torch.Generator(),
             on_epoch=lambda epoch, metrics: weighted.append(loss.weight is not None))
    assert weighted == [False, False, True, True]


def test_naive_stops_the_run_where_the_stable_form_trains():
    # inputs of magnitude 1000 give logits that overflow exp in float32 from the first step
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)) * 1000
    data = loop.Tensors(x, torch.arange(16) % 2)
    cfg = loop.FitConfig(epochs=2, batch_size=8, progress=False)

    def fit(option):
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        return loop.fit(model, loss_of(f"loss={option}", counts=[8, 8]), torch.optim.SGD(model.parameters(), lr=0.01),
                        data, data, ["a", "b"], cfg, torch.Generator(), on_epoch=lambda e, m: None)
    with pytest.raises(loop.NonFiniteLoss, match=r"epoch 1, step 0"):
        fit("naive")
    assert fit("plain").epochs_run == 2


def test_detect_anomaly_fails_the_run_naming_the_operation_that_made_the_nan(run_cfg, store):
    with pytest.raises(RuntimeError, match="returned nan values"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(run_cfg("loss=naive", "optim=sgd", "optim.lr=1e30", "trainer.detect_anomaly=true"))
    assert any("Traceback of forward call that caused the error" in str(w.message) for w in caught)
    assert not torch.is_anomaly_enabled()
    r = _last_run(store)
    assert r.info.status == "FAILED" and "nan values" in r.data.tags["error"]


def test_a_non_finite_loss_of_a_variant_fails_the_run_naming_epoch_and_step(run_cfg, store):
    with pytest.raises(loop.NonFiniteLoss, match=r"at epoch 1, step \d+"):
        run(run_cfg("loss=naive", "optim=sgd", "optim.lr=1e30"))
    r = _last_run(store)
    assert r.info.status == "FAILED" and "epoch 1, step" in r.data.tags["error"]


def _last_run(store):
    client = MlflowClient(store)
    return client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                              order_by=["attributes.start_time DESC"], max_results=1)[0]


# ---- the variants in whole runs ------------------------------------------------------------------------------

NEW_VARIANTS = [[f"loss={v}"] for v in VARIANTS if v not in ("plain", "weighted", "label_smoothed", "focal")]


@pytest.mark.parametrize("overrides", NEW_VARIANTS + [["loss=ldam", "loss.drw_epoch=1"]], ids=lambda o: " ".join(o))
def test_each_variant_trains_a_finished_run(run_cfg, store, overrides):
    result = run(run_cfg(*overrides))
    r = MlflowClient(store).get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["loss"] == overrides[0].split("=")[1]
    assert math.isfinite(r.data.metrics["test/ce"]) and math.isfinite(r.data.metrics["val/loss"])
    assert not any(k.startswith("test/posthoc/") for k in r.data.metrics)  # eval.posthoc_tau is off by default


def test_ldam_metrics_score_the_scaled_logits_the_loss_trains(run_cfg):
    # With a cosine head the raw outputs lie in [-1, 1]: scored unscaled, ce would stay near log(10) = 2.30.
    result = run(run_cfg("loss=ldam", "model.normed_head=true", "trainer.epochs=15"))
    assert result.test["balanced_accuracy"] > 0.5 and result.test["ce"] < 1.5


def test_normed_head_outputs_cosines():
    from trainer.models.networks import CNN, MLP, LogReg, NormedLinear
    x = torch.randn(7, 1, 8, 8) * 50
    for model in (MLP((1, 8, 8), 10, normed_head=True), LogReg((1, 8, 8), 10, normed_head=True),
                  CNN((1, 8, 8), 10, normed_head=True)):
        assert any(isinstance(m, NormedLinear) for m in model.modules())
        out = model(x)
        assert out.shape == (7, 10) and out.abs().max() <= 1 + 1e-6
    head = NormedLinear(3, 2)
    v = torch.tensor([[2.0, 0.0, 0.0]])
    expected = head.weight[:, 0] / head.weight.norm(dim=1)
    assert torch.allclose(head(v)[0], expected)


def test_posthoc_tau_logs_adjusted_test_metrics_beside_the_raw_ones(run_cfg, store):
    result = run(run_cfg("eval.posthoc_tau=1.0", "trainer.epochs=5"))
    metrics = MlflowClient(store).get_run(result.run_id).data.metrics
    for key in ("ce", "balanced_accuracy", "ece", "recall/9"):
        assert f"test/{key}" in metrics and f"test/posthoc/{key}" in metrics
    assert metrics["test/balanced_accuracy"] == pytest.approx(result.test["balanced_accuracy"])
    # the rarest class (9) gains recall once its logit is no longer held down by its small prior
    assert metrics["test/posthoc/recall/9"] >= metrics["test/recall/9"]
    assert metrics["test/posthoc/ce"] != metrics["test/ce"]


BAD_LOSS = [
    ("loss=class_balanced", "loss.beta=1", "loss.beta"),
    ("loss=class_balanced", "loss.base=mse", "loss.base"),
    ("loss=logit_adjusted", "loss.tau=-1", "loss.tau"),
    ("loss=ldam", "loss.scale=0", "loss.scale"),
    ("loss=ldam", "loss.max_margin=-0.1", "loss.max_margin"),
    ("loss=ldam", "loss.drw_epoch=1.5", "loss.drw_epoch"),
    ("loss=poly", "loss.epsilon=-2", "loss.epsilon"),
    ("loss=gce", "loss.q=0", "loss.q"),
    ("loss=gce", "loss.q=1.5", "loss.q"),
    ("loss=sce", "loss.alpha=-1", "loss.alpha"),
    ("loss=sce", "loss.alpha=0", "loss.beta=0", "loss.beta"),
    ("loss=naive", "loss.eps=0.5", "loss.eps"),
    ("loss=naive", "loss.clip=maybe", "loss.clip"),
    ("loss=label_smoothed", "loss.scheme=bogus", "loss.scheme"),
    ("loss=plain", "model.normed_head=1", "model.normed_head"),
    ("loss=plain", "eval.posthoc_tau=-1", "eval.posthoc_tau"),
    ("loss=plain", "trainer.detect_anomaly=yes please", "trainer.detect_anomaly"),
]


@pytest.mark.parametrize("case", BAD_LOSS, ids=lambda c: " ".join(c[1:-1]))
def test_bad_settings_name_the_key_and_what_it_takes(case):
    *overrides, key = case
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert err.value.key == key and "must be" in str(err.value)


# ---- experiment=loss_zoo ---------------------------------------------------------------------------------------

def test_loss_zoo_sweeps_every_variant_with_three_seeds_as_a_multirun():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=loss_zoo"], return_hydra_config=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    params = cfg.hydra.sweeper.params
    assert set(params.loss.split(",")) == set(VARIANTS) and params.seed.split(",") == ["0", "1", "2"]


@pytest.mark.slow
def test_loss_zoo_without_minus_m_makes_one_parent_run(tmp_path):
    # command-line values of a swept key replace the preset's list
    proc = train_cli("experiment=loss_zoo", "loss=ldam", "seed=0", "trainer.epochs=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert [r.data.tags["loss"] for r in children] == ["ldam"]


@pytest.mark.slow
def test_the_whole_loss_zoo_runs_every_variant_three_times(tmp_path):
    proc = train_cli("-m", "experiment=loss_zoo", "trainer.epochs=2", cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3 * len(VARIANTS) and all(r.info.status == "FINISHED" for r in children)
    assert {(r.data.tags["loss"], r.data.params["seed"]) for r in children} == {
        (v, str(s)) for v in VARIANTS for s in range(3)}
