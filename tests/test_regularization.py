"""Weight decay on weights only (not biases or normalization parameters), and the elastic-net penalty."""
from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from helpers import make_cfg
from trainer.models.networks import MLP
from trainer.models.optim import build_optimizer, param_groups
from trainer.run import run
from trainer.train.loop import penalty


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
                         nn.LayerNorm(8), nn.Linear(8, 3, bias=False))


def test_groups_put_only_weight_matrices_and_kernels_under_decay():
    net = _net()
    decay, no_decay = param_groups(net, 0.1)
    names = {id(p): n for n, p in net.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == ["0.weight", "3.weight", "5.weight"]
    assert sorted(names[id(p)] for p in no_decay["params"]) == ["0.bias", "1.bias", "1.weight", "3.bias",
                                                                "4.bias", "4.weight"]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_a_step_without_gradient_shrinks_weights_and_leaves_biases_and_norms(optim):
    net = _net()
    cfg = make_cfg(f"optim={optim}", "optim.weight_decay=0.5").optim
    optimizer = build_optimizer(cfg, net)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)  # only the decay moves anything
    optimizer.step()
    for n, p in net.named_parameters():
        if n in ("0.weight", "3.weight", "5.weight"):
            assert p.norm() < before[n].norm(), n
        else:
            assert torch.equal(p, before[n]), n


def test_elastic_penalty_is_l1_plus_l2_on_weights():
    torch.manual_seed(0)
    model = MLP((5,), 3, hidden=[4])
    cfg = make_cfg("regularization=elastic").regularization
    weights = [model.net[1].weight, model.net[4].weight]
    expected = cfg.l1 * sum(w.abs().sum() for w in weights) + cfg.l2 * sum(w.pow(2).sum() for w in weights)
    assert cfg.l1 > 0 and cfg.l2 > 0
    assert penalty(model, cfg.l1, cfg.l2).item() == pytest.approx(expected.item())


def test_elastic_run_adds_the_penalty_to_loss_but_not_to_ce(run_cfg, store):
    result = run(run_cfg("regularization=elastic", "regularization.l1=1e-3", "regularization.l2=1e-3"))
    r = MlflowClient(store).get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["regularization"] == "elastic"
    m = r.data.metrics
    assert m["val/loss"] > m["val/ce"] and m["test/loss"] > m["test/ce"]
