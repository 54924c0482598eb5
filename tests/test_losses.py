"""The loss API and the identities that tie every variant to plain cross-entropy."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import make_cfg
from torchvision.ops import sigmoid_focal_loss

from trainer.config import ConfigError
from trainer.losses import build_loss, class_weights

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
