"""The on-device input module of image datasets, and the models on images of every shape the loaders give."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from helpers import make_cfg
from trainer.data.standardize import channel_stats
from trainer.data.types import Dataset, Split
from trainer.errors import UserError
from trainer.models.inputs import ImageInput, random_crop_flip, with_inputs
from trainer.models.networks import build_network


def images(n: int = 64, c: int = 3, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, c, size, size), dtype=np.uint8))


def test_channel_stats_are_the_per_channel_mean_and_std():
    x = images(50, 3, 9).numpy()
    mean, std = channel_stats(x, chunk=7)  # chunks that do not divide N
    as_float = x.astype(np.float64)
    assert np.allclose(mean, as_float.mean(axis=(0, 2, 3))) and np.allclose(std, as_float.std(axis=(0, 2, 3)))
    flat = np.zeros((4, 1, 3, 3), np.uint8)
    assert channel_stats(flat)[1][0] == 1.0  # a constant channel is not divided by zero


def test_eval_mode_normalises_uint8_and_float_pixels_alike():
    x = images()
    module = ImageInput(np.array([100.0, 120.0, 140.0]), np.array([50.0, 60.0, 70.0]), augment=True).eval()
    out = module(x)
    expected = (x.float() - torch.tensor([100.0, 120.0, 140.0]).view(1, 3, 1, 1)) / torch.tensor(
        [50.0, 60.0, 70.0]).view(1, 3, 1, 1)
    assert out.dtype == torch.float32 and torch.allclose(out, expected)
    assert torch.equal(module(x.float()), out)  # resampled (float32) pixels on the same 0..255 scale


def test_random_crop_flip_gives_a_shifted_window_of_the_padded_image_maybe_mirrored():
    x = images(64, 2, 8).float()
    torch.manual_seed(0)
    out = random_crop_flip(x, padding=2)
    padded = nn.functional.pad(x, (2, 2, 2, 2))
    shifted = flipped = 0
    for i in range(len(x)):
        windows = {(dy, dx, f): padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1) if f else padded[i, :, dy:dy + 8, dx:dx + 8]
                   for dy in range(5) for dx in range(5) for f in (False, True)}
        match = [k for k, w in windows.items() if torch.equal(w, out[i])]
        assert match, f"image {i} is no crop of its padded self"
        shifted += match[0][:2] != (2, 2)
        flipped += match[0][2]
    assert 40 < shifted and 16 < flipped < 48  # 24 of 25 offsets move the image; half are mirrored


def test_augmentation_only_in_train_mode_and_only_when_asked():
    x = images()
    stats = (np.full(3, 128.0), np.full(3, 64.0))
    on = ImageInput(*stats, augment=True)
    assert not torch.equal(on.train()(x), on.eval()(x))
    assert torch.equal(on.eval()(x), on.eval()(x))
    off = ImageInput(*stats, augment=False).train()
    assert torch.equal(off(x), on.eval()(x))


def test_with_inputs_puts_train_statistics_in_front_of_image_models_only():
    rng = np.random.default_rng(0)
    train = Split(rng.integers(0, 100, (20, 1, 6, 6), dtype=np.uint8), np.zeros(20, np.int64))
    other = Split(rng.integers(150, 256, (10, 1, 6, 6), dtype=np.uint8), np.zeros(10, np.int64))
    ds = Dataset(train, other, other, ["a"], images=True)
    model = nn.Flatten()
    wrapped = with_inputs(model, ds, OmegaConf.create({"augment": True}))
    assert wrapped.inputs.augment and wrapped.model is model
    assert wrapped.inputs.mean.item() == pytest.approx(train.x.mean())  # val/test pixels do not count
    features = Dataset(Split(np.zeros((5, 3), np.float32), np.zeros(5, np.int64)), train, train, ["a"])
    assert with_inputs(model, features, OmegaConf.create({})) is model


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the augmentation runs on CPU only")
def test_input_module_runs_on_cuda():
    x = images().cuda()
    module = ImageInput(np.full(3, 128.0), np.full(3, 64.0), augment=True).cuda().train()
    out = module(x)
    assert out.is_cuda and out.shape == x.shape


# ---- models on images ------------------------------------------------------------------------------------------

def build(model: str, shape: tuple[int, ...], *overrides: str, classes: int = 7, dropout: float = 0.0) -> nn.Module:
    return build_network(make_cfg(f"model={model}", *overrides).model, shape, classes, dropout)


SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 16, 16)]


@pytest.mark.parametrize("model", ["mlp", "logreg", "cnn"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_models_take_images_of_any_shape(model, shape):
    logits = build(model, shape)(torch.randn(2, *shape))
    assert logits.shape == (2, 7)


def test_resnet18_uses_the_cifar_stem_below_64_px():
    small = build("resnet18", (3, 32, 32))
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and isinstance(small.maxpool,
                                                                                          nn.Identity)
    large = build("resnet18", (3, 64, 64))
    assert large.conv1.kernel_size == (7, 7) and isinstance(large.maxpool, nn.MaxPool2d)
    assert build("resnet18", (3, 64, 64), "model.small_stem_below=128").conv1.kernel_size == (3, 3)
    for shape, net in (((3, 32, 32), small), ((3, 64, 64), large)):
        assert net(torch.randn(2, *shape)).shape == (2, 7)


def test_resnet18_takes_grey_images_and_dropout():
    net = build("resnet18", (1, 28, 28), dropout=0.3)
    assert net.conv1.in_channels == 1 and isinstance(net.fc[0], nn.Dropout) and net.fc[0].p == 0.3
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 7)
    grey = build("resnet18", (1, 96, 96))
    assert grey.conv1.in_channels == 1 and grey(torch.randn(2, 1, 96, 96)).shape == (2, 7)


def test_resnet18_errors_are_clear(monkeypatch, tmp_path):
    with pytest.raises(UserError, match=r"model=resnet18 takes images \(C, H, W\).*shape \(30,\)"):
        build("resnet18", (30,))
    with pytest.raises(UserError, match=r"model.weights=BOGUS is not a torchvision weight.*IMAGENET1K_V1"):
        build("resnet18", (3, 32, 32), "model.weights=BOGUS")
    import urllib.error

    import torch.hub

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached weights
    monkeypatch.setattr(torch.hub, "urlopen", offline)
    with pytest.raises(UserError, match=r"model.weights=IMAGENET1K_V1: downloading the weights failed"):
        build("resnet18", (3, 32, 32), "model.weights=IMAGENET1K_V1")
