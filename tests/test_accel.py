"""trainer.precision, trainer.channels_last and trainer.compile: the forward pass changes, the rest does not."""
from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from torch import nn

from trainer.models.accel import Accelerated, accelerate
from trainer.models.networks import CNN, MLP
from trainer.run import run

CPU = torch.device("cpu")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: run on a GPU machine")


def test_defaults_leave_the_model_as_it_is():
    model = CNN((1, 8, 8), 10)
    assert accelerate(model, OmegaConf.create({}), CPU) is model  # channels_last=auto is for CUDA only


def test_bf16_autocasts_the_layers_and_returns_float32_logits():
    model = accelerate(MLP((1, 8, 8), 10), OmegaConf.create({"precision": "bf16"}), CPU)
    seen = []
    model.net.net[1].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    logits = model(torch.randn(4, 1, 8, 8))
    assert isinstance(model, Accelerated) and seen == [torch.bfloat16] and logits.dtype == torch.float32


def test_channels_last_converts_conv_weights_and_inputs_and_keeps_the_result():
    torch.manual_seed(0)
    plain = CNN((3, 16, 16), 4)
    fast = accelerate(CNN((3, 16, 16), 4), OmegaConf.create({"channels_last": True}), CPU)
    fast.net.load_state_dict(plain.state_dict())
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(5, 3, 16, 16)
    assert torch.allclose(fast(x), plain(x), atol=1e-5)
    assert accelerate(MLP((3, 16, 16), 4), OmegaConf.create({"channels_last": True}), CPU).__class__ is MLP


def test_a_bf16_channels_last_run_trains_and_logs(run_cfg, store):
    result = run(run_cfg("model=cnn", "trainer.precision=bf16", "trainer.channels_last=true"))
    r = MlflowClient(store).get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.params["trainer.precision"] == "bf16"
    assert 0.0 <= result.test["balanced_accuracy"] <= 1.0


@pytest.mark.slow
def test_a_compiled_run_matches_the_eager_one(run_cfg):
    eager = run(run_cfg("model=mlp", "trainer.epochs=2"))
    compiled = run(run_cfg("model=mlp", "trainer.epochs=2", "trainer.compile=true"))
    assert compiled.test["accuracy"] == pytest.approx(eager.test["accuracy"], abs=0.02)


@cuda
@pytest.mark.parametrize("extra", [[], ["trainer.precision=bf16"], ["trainer.precision=bf16", "trainer.compile=true"]],
                         ids=["fp32", "bf16", "bf16+compile"])
def test_cuda_runs_end_to_end(run_cfg, store, extra):
    result = run(run_cfg("model=cnn", "imbalance=none", "trainer.device=cuda", "trainer.epochs=6", *extra))
    r = MlflowClient(store).get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["device"].startswith("cuda")
    assert result.test["balanced_accuracy"] > 0.8  # as on the CPU, where 6 such epochs reach about 0.93


@cuda
def test_auto_device_picks_cuda_and_channels_last_for_conv_models(run_cfg, store):
    result = run(run_cfg("model=cnn"))
    assert MlflowClient(store).get_run(result.run_id).data.tags["device"].startswith("cuda")
    model = accelerate(CNN((1, 8, 8), 10).cuda(), OmegaConf.create({}), torch.device("cuda"))
    assert isinstance(model, Accelerated) and model.channels_last
