"""Specification of :mod:`mammotriage.model.network`: one pass, a score and where it came from."""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import pytest
import torch
from torch import nn

from mammotriage.errors import ConfigError
from mammotriage.model.network import (
    NETWORKS,
    NetworkConfig,
    SuspicionNetwork,
    build_network,
    count_flops,
    count_parameters,
)

H, W = 128, 64
Model = TypeVar("Model", bound=nn.Module)


def settle_batch_norm(model: Model, seed: int = 0) -> Model:
    """Give batch norm real statistics, as training would, then switch to eval mode.

    Freshly initialised deep networks (EfficientNet above all) shrink activations to ~1e-13
    in eval mode, which would make every output comparison vacuous.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the passes below
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 1, H, W, generator=generator))
    return model.eval()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_each_network_returns_a_logit_per_image_and_a_map_at_its_stride(name: str) -> None:
    model = build_network({"name": name}).eval()
    with torch.no_grad():
        logit, suspicion_map = model(torch.randn(2, 1, H, W))
    stride = NETWORKS[name].map_stride
    assert model.map_stride == stride
    assert logit.shape == (2,)
    assert suspicion_map.shape == (2, 1, H // stride, W // stride)
    assert logit.dtype == suspicion_map.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("axis", [0, 1])
def test_each_map_cell_is_centred_on_its_own_block_of_input_pixels(name: str, axis: int) -> None:
    # The receptive field of a cell is where its gradient is non-zero; its middle must be
    # the middle of the cell's stride x stride block, or every region box is shifted. A long,
    # narrow input holds the whole field along the axis measured.
    model = settle_batch_norm(build_network({"name": name}))
    for module in model.modules():
        if hasattr(module, "has_se"):
            setattr(module, "has_se", False)  # noqa: B010 - squeeze-excitation pools globally
    stride, long = model.map_stride, 1024
    shape = (long, 2 * stride) if axis == 0 else (2 * stride, long)
    cell = long // stride // 2
    generator = torch.Generator().manual_seed(0)
    gradient = torch.zeros(shape)
    for _ in range(4):
        image = torch.randn(1, 1, *shape, generator=generator, requires_grad=True)
        suspicion_map = model(image)[1][0, 0]
        (suspicion_map[cell, 0] if axis == 0 else suspicion_map[0, cell]).backward()
        assert image.grad is not None
        gradient += image.grad[0, 0].abs()
    reached = torch.nonzero(gradient.sum(dim=1 - axis) > 0)[:, 0]
    field_centre = (int(reached.min()) + int(reached.max())) / 2
    assert abs(field_centre - ((cell + 0.5) * stride - 0.5)) <= 0.5


def test_input_not_a_multiple_of_the_map_stride_is_refused() -> None:
    with pytest.raises(ValueError, match="multiples of the map stride 16"):
        build_network({"name": "tiny-cnn"})(torch.zeros(1, 1, 100, 64))


@pytest.mark.parametrize("fraction", [0.03, 0.2, 1.0])
def test_topk_logit_is_the_mean_of_the_highest_map_cells(fraction: float) -> None:
    model = settle_batch_norm(build_network({"name": "tiny-cnn", "topk_fraction": fraction}))
    with torch.no_grad():
        logit, suspicion_map = model(torch.randn(3, 1, H, W))
    cells = suspicion_map[:, 0].flatten(1).numpy()
    k = max(1, math.ceil(fraction * cells.shape[1]))
    expected = np.sort(cells, axis=1)[:, ::-1][:, :k].mean(axis=1)
    np.testing.assert_allclose(logit.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_lse_logit_is_the_log_mean_exp_of_the_map() -> None:
    model = settle_batch_norm(build_network({"name": "tiny-cnn", "pooling": "lse"}))
    with torch.no_grad():
        logit, suspicion_map = model(torch.randn(3, 1, H, W))
    cells = suspicion_map[:, 0].flatten(1).double().numpy()
    r = model.config.lse_sharpness
    expected = np.log(np.mean(np.exp(r * cells), axis=1)) / r
    np.testing.assert_allclose(logit.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.all(logit.numpy() <= cells.max(axis=1) + 1e-6)  # a smoothed maximum


def test_an_image_score_does_not_depend_on_the_rest_of_its_batch() -> None:
    model = settle_batch_norm(build_network({"name": "tiny-cnn"}))
    images = torch.randn(3, 1, H, W)
    with torch.no_grad():
        together = model(images)[0]
        alone = torch.cat([model(images[i : i + 1])[0] for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_unknown_network_name_is_a_config_error_naming_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build_network({"name": "vgg-16"})
    message = str(caught.value)
    assert "'vgg-16'" in message
    assert all(name in message for name in NETWORKS)


def test_unknown_config_key_is_a_config_error_naming_the_allowed_keys() -> None:
    with pytest.raises(ConfigError, match="'pretrained'.*allowed: name, pooling"):
        build_network({"name": "tiny-cnn", "pretrained": True})


@pytest.mark.parametrize(
    "config",
    [
        {"pooling": "max"},
        {"topk_fraction": 0.0},
        {"topk_fraction": 1.5},
        {"topk_fraction": "0.03"},
        {"lse_sharpness": -1.0},
        {"dropout": 1.0},
        {"dropout": True},
    ],
)
def test_out_of_range_values_are_config_errors(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=f'"{next(iter(config))}"'):
        build_network(config)


def test_config_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        NetworkConfig.from_dict(["tiny-cnn"])  # type: ignore[arg-type]


def test_architecture_records_what_the_sidecar_needs() -> None:
    model = build_network({"name": "tiny-cnn", "pooling": "lse"})
    assert model.architecture["name"] == "tiny-cnn"
    assert model.architecture["pooling"] == "lse"
    assert model.architecture["map_stride"] == 16
    assert model.architecture["parameters"] == count_parameters(model)


def test_efficientnet_carries_no_unused_classifier() -> None:
    model = build_network({"name": "efficientnet-b0"})
    used = {name for name, _ in model.named_parameters()}
    assert not any("_fc" in name or "_conv_head" in name for name in used)
    assert count_parameters(model) < 4_500_000


def test_prepare_for_export_replaces_the_memory_efficient_swish() -> None:
    model = build_network({"name": "efficientnet-b0"}).eval()
    images = torch.randn(1, 1, H, W)
    with torch.no_grad():
        before = model(images)[0]
    model.prepare_for_export()
    kinds = {type(m).__name__ for m in model.modules()}
    assert "MemoryEfficientSwish" not in kinds
    with torch.no_grad():
        torch.testing.assert_close(model(images)[0], before)


def test_flops_grow_with_the_network() -> None:
    flops = {name: count_flops(build_network({"name": name}), (H, W)) for name in NETWORKS}
    assert 0 < flops["tiny-cnn"] < flops["efficientnet-b0"] < flops["resnet18"]


def test_tiny_cnn_learns_to_score_and_point_at_a_bright_lesion() -> None:
    # The multiple-instance head learns from image labels alone where the lesion is:
    # the hottest map cell lands on (or next to) the lesion it has never been shown.
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int]]]:
        images = (rng.standard_normal((n, 1, H, W)) * 0.5).astype(np.float32)
        labels = rng.random(n) < 0.5
        lesions = []
        for i in np.flatnonzero(labels):
            cy, cx = int(rng.integers(8, H - 8)), int(rng.integers(8, W - 8))
            images[i, 0] += 1.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
            lesions.append((int(i), cy, cx))
        return torch.from_numpy(images), torch.from_numpy(labels.astype(np.float32)), lesions

    model: SuspicionNetwork = build_network({"name": "tiny-cnn"})
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(80):
        images, labels, _ = batch(8)
        loss = nn.functional.binary_cross_entropy_with_logits(model(images)[0], labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    model.eval()
    images, labels, lesions = batch(64)
    with torch.no_grad():
        logit, suspicion_map = model(images)
    positive, negative = logit[labels == 1].numpy(), logit[labels == 0].numpy()
    auc = float((positive[:, None] > negative[None, :]).mean())
    assert auc >= 0.95
    stride, width = model.map_stride, suspicion_map.shape[-1]
    for i, cy, cx in lesions:
        row, col = divmod(int(suspicion_map[i, 0].flatten().argmax()), width)
        assert abs(row - cy // stride) <= 1 and abs(col - cx // stride) <= 1


def test_every_name_the_package_exports_resolves() -> None:
    import mammotriage.model as package

    assert all(getattr(package, name) is not None for name in package.__all__)
