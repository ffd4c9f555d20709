"""The network: one forward pass gives an image-level malignancy logit and where it came from.

A radiologist does not act on a bare score; she looks where the model looked. So the network
ends in a *suspicion map* (a 1x1-convolution head giving one logit per cell of the last
feature map) and the image logit is pooled from that map, multiple-instance style (as in
GMIC, Shen et al., Med Image Anal 2021): the mean of the top-k cells, or a smoothed maximum
(log-sum-exp). Every score therefore comes with the cells that produced it, and nothing in
the image logit can come from anywhere the map does not show.

Architecture is configuration: :data:`NETWORKS` is the name -> parameters table, and
:func:`build_network` validates a config mapping against it. Networks know nothing of
files; weights are always randomly initialised (``pretrained=False``) because nothing may be
downloaded at run time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import EfficientNetBNFeatures, ResNet
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mammotriage.errors import ConfigError

Pooling = Literal["topk", "lse"]
Family = Literal["tiny-cnn", "efficientnet", "resnet"]


@dataclass(frozen=True)
class NetworkVariant:
    """One row of :data:`NETWORKS`: a backbone and the defaults of its head.

    Parameters
    ----------
    family
        Which builder makes the backbone.
    backbone
        ``efficientnet`` only: MONAI's ``model_name``.
    channels
        ``tiny-cnn``: output channels of the stem and of each stride-2 stage. ``resnet``:
        MONAI's ``block_inplanes``.
    layers
        ``resnet`` only: basic blocks per stage.
    map_stride
        Input pixels per suspicion-map cell, per axis. Declared here (and checked by the
        tests) so that inference can place regions without running the network.
    receptive_centre
        Input row (and column) on which the backbone's own map cell 0 is centred, from its
        padding arithmetic (checked by the tests). :class:`SuspicionNetwork` pads and crops
        so that cell ``i`` ends up centred on its block, at ``(i + 0.5) * map_stride - 0.5``.
    dropout
        Default channel dropout on the last feature map, before the head.
    description
        One line for ``--help`` and the model card.
    """

    family: Family
    map_stride: int
    receptive_centre: float
    dropout: float
    description: str
    backbone: str = ""
    channels: tuple[int, ...] = ()
    layers: tuple[int, ...] = ()


#: Name -> parameters. ``tiny-cnn`` is the default: small enough to train on a CPU in
#: minutes at 256 x 128, for the demonstration model and for tests.
NETWORKS: dict[str, NetworkVariant] = {
    "tiny-cnn": NetworkVariant(
        family="tiny-cnn",
        channels=(16, 32, 64, 128),
        map_stride=16,
        receptive_centre=7.5,  # 4x4 stride-2 convolutions: centred by construction
        dropout=0.0,
        description="4-stage MONAI Convolution stack (~0.4 M parameters); CPU-trainable",
    ),
    "efficientnet-b0": NetworkVariant(
        family="efficientnet",
        backbone="efficientnet-b0",
        map_stride=32,
        receptive_centre=31.0,  # TensorFlow "same" padding puts the extra pixel after
        dropout=0.2,
        description="MONAI EfficientNet-B0 features (~3.6 M parameters); for GPU training",
    ),
    "resnet18": NetworkVariant(
        family="resnet",
        channels=(64, 128, 256, 512),
        layers=(2, 2, 2, 2),
        map_stride=32,
        receptive_centre=0.0,  # odd kernels, symmetric padding: cell i centred on pixel 32 i
        dropout=0.2,
        description="MONAI ResNet-18 trunk (~11 M parameters); for GPU training",
    ),
}


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """A validated network configuration, as read from a training config's ``network`` block.

    Parameters
    ----------
    name
        A key of :data:`NETWORKS`.
    pooling
        ``"topk"``: the image logit is the mean of the ``topk_fraction`` highest map cells.
        ``"lse"``: ``log(mean(exp(r * map))) / r`` with ``r = lse_sharpness``, which tends to
        the maximum as ``r`` grows and to the mean as it shrinks.
    topk_fraction
        Fraction of map cells averaged by ``"topk"``; ``k = ceil(fraction * cells)``, at least
        1. A few per cent covers a lesion's cells without letting the rest of the breast vote.
    lse_sharpness
        ``r`` of ``"lse"``.
    dropout
        Channel dropout before the head; ``None`` takes the variant's default.
    """

    name: str = "tiny-cnn"
    pooling: Pooling = "topk"
    topk_fraction: float = 0.03
    lse_sharpness: float = 5.0
    dropout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in NETWORKS:
            raise ConfigError(
                f'Network "name" must be one of {", ".join(NETWORKS)}, got {self.name!r}.'
            )
        if self.pooling not in get_args(Pooling):
            raise ConfigError(
                f'Network "pooling" must be one of {", ".join(get_args(Pooling))}, '
                f"got {self.pooling!r}."
            )
        for key, low, high in (("topk_fraction", 0.0, 1.0), ("lse_sharpness", 0.0, math.inf)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f'Network "{key}" must be a number, got {value!r}.')
            if not (low < value <= high) or math.isnan(value):
                raise ConfigError(f'Network "{key}" must be in ({low}, {high}], got {value!r}.')
        if self.dropout is not None and (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, (int, float))
            or not 0.0 <= self.dropout < 1.0
        ):
            raise ConfigError(f'Network "dropout" must be in [0, 1), got {self.dropout!r}.')

    @property
    def variant(self) -> NetworkVariant:
        return NETWORKS[self.name]

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> NetworkConfig:
        """Validate a config mapping; unknown keys are errors, not silently ignored.

        Raises
        ------
        ConfigError
            If ``config`` is not a mapping, has unknown keys, or holds a bad value.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"Network config must be a mapping, got {type(config).__name__}.")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - set(allowed), key=str)
        if unknown:
            raise ConfigError(
                f"Unknown network config key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed)}."
            )
        return cls(**dict(config))


class MapPooling(nn.Module):
    """Pool a suspicion map ``(N, 1, h, w)`` to image logits ``(N,)``.

    ``k`` of top-k depends only on the map size, which is fixed by the model's input size,
    so an exported graph holds it as a constant.
    """

    def __init__(self, pooling: Pooling, *, topk_fraction: float, lse_sharpness: float) -> None:
        super().__init__()
        self.pooling = pooling
        self.topk_fraction = topk_fraction
        self.lse_sharpness = lse_sharpness

    def k_for(self, cells: int) -> int:
        """Number of cells top-k pooling averages on a map of ``cells`` cells."""
        return max(1, min(cells, math.ceil(self.topk_fraction * cells)))

    def forward(self, suspicion_map: torch.Tensor) -> torch.Tensor:
        height, width = (int(v) for v in suspicion_map.shape[-2:])
        cells = height * width
        flat = suspicion_map.flatten(1)
        if self.pooling == "topk":
            return torch.topk(flat, self.k_for(cells), dim=1).values.mean(dim=1)
        r = self.lse_sharpness
        return (torch.logsumexp(r * flat, dim=1) - math.log(cells)) / r


class SuspicionNetwork(nn.Module):
    """Backbone -> 1x1-conv suspicion map -> pooled image logit.

    ``forward(image)`` takes ``(N, 1, H, W)`` float32 as made by
    :func:`mammotriage.preprocess.preprocess`, ``H`` and ``W`` multiples of ``map_stride``,
    and returns ``(logit, suspicion_map)`` of shapes ``(N,)`` and
    ``(N, 1, H / map_stride, W / map_stride)``, in the order of the ONNX outputs named in
    :class:`mammotriage.sidecar.Outputs`.

    Backbones centre their cells wherever their padding puts them (ResNet's cell ``i`` on
    pixel ``32 i``, EfficientNet's on ``32 i + 31``): half a cell, 7 mm on a full-field
    mammogram, between a finding and the box drawn around it. The input is therefore
    edge-padded at the top and left and the map cropped, so that every cell sits on its
    own block (to half a pixel).

    Attributes
    ----------
    map_stride
        Input pixels per map cell, per axis: cell ``(i, j)`` is centred on input block
        rows ``[i * map_stride, (i + 1) * map_stride)``, columns likewise. (It sees far more
        than its block: the receptive field spans ~90 px for ``tiny-cnn``, hundreds for the
        others.)
    config
        The validated configuration it was built from.
    """

    def __init__(
        self, backbone: nn.Module, *, feature_channels: int, config: NetworkConfig
    ) -> None:
        super().__init__()
        variant = config.variant
        self.config = config
        self.map_stride = stride = variant.map_stride
        # Pad by q so that backbone cell i is centred on input pixel stride * i + c - q,
        # then drop the leading cells that this moves before the image.
        target = (stride - 1) / 2
        self.align_pad = round(variant.receptive_centre - target) % stride
        self.align_drop = round((self.align_pad - variant.receptive_centre + target) / stride)
        self.backbone = backbone
        dropout = variant.dropout if config.dropout is None else config.dropout
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(feature_channels, 1, kernel_size=1)
        self.pool = MapPooling(
            config.pooling, topk_fraction=config.topk_fraction, lse_sharpness=config.lse_sharpness
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = (int(v) for v in image.shape[-2:])
        stride = self.map_stride
        if height % stride or width % stride:
            raise ValueError(
                f"Input height and width must be multiples of the map stride {stride}, "
                f"got {height} x {width}."
            )
        if self.align_pad:
            pad = self.align_pad
            image = nn.functional.pad(image, (pad, 0, pad, 0), mode="replicate")
        suspicion_map = self.head(self.dropout(self.backbone(image)))
        first = self.align_drop
        rows, cols = height // stride, width // stride
        suspicion_map = suspicion_map[..., first : first + rows, first : first + cols]
        return self.pool(suspicion_map), suspicion_map

    @property
    def architecture(self) -> dict[str, Any]:
        """JSON-ready description for the model sidecar and model card."""
        return {
            **asdict(self.config),
            "family": self.config.variant.family,
            "map_stride": self.map_stride,
            "parameters": count_parameters(self),
        }

    def prepare_for_export(self) -> None:
        """Swap training-only operations for exportable ones with the same arithmetic.

        MONAI's EfficientNet trains with a memory-efficient swish written as a custom
        autograd function, which exporters can only record as an opaque Python operator
        (torch 2.13's TorchScript exporter happens to inline it; the dynamo exporter and
        older versions do not). The plain swish computes the same values, so MONAI asks
        for it before export. Other backbones need nothing.
        """
        if isinstance(self.backbone, EfficientNetBNFeatures):
            self.backbone.set_swish(memory_efficient=False)


class TinyCNN(nn.Sequential):
    """Stem plus stride-2 stages of MONAI ``Convolution`` blocks (conv, batch norm, ReLU).

    Each stage after the stem halves the resolution and then refines at that resolution, so
    the map stride is ``2 ** len(channels)``. Downsampling uses 4x4 kernels with padding 1:
    output ``i`` is centred on input ``2 i + 0.5``, the middle of its two input pixels, so
    map cells sit on their blocks with no correction (3x3 kernels would shift each cell by
    half a cell).
    """

    def __init__(self, channels: tuple[int, ...], in_channels: int = 1) -> None:
        layers: list[nn.Module] = [_conv(in_channels, channels[0], downsample=True)]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [_conv(c_in, c_out, downsample=True), _conv(c_out, c_out, downsample=False)]
        super().__init__(*layers)


class EfficientNetTrunk(EfficientNetBNFeatures):
    """MONAI's EfficientNet feature extractor, returning only the deepest feature map.

    The classification head that MONAI builds anyway (1x1 conv to 1280 channels and a
    1000-class linear layer, ~1.7 M parameters for b0) is dropped: it is never run, and
    unused parameters would only inflate checkpoints and upset distributed training.
    """

    def __init__(self, model_name: str) -> None:
        super().__init__(model_name, pretrained=False, spatial_dims=2, in_channels=1)
        del self._conv_head, self._conv_head_padding, self._bn1, self._avg_pooling, self._fc

    @property
    def out_channels(self) -> int:
        return int(self._blocks_args[-1].output_filters)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features: list[torch.Tensor] = super().forward(inputs)
        return features[-1]


class ResNetTrunk(ResNet):
    """MONAI's 2-D ResNet up to its last stage, without the global pooling and classifier.

    Projection shortcuts (MONAI's type ``"B"``) throughout: MONAI's ``resnet18`` preset uses
    type ``"A"``, whose zero-padding shortcut bakes the batch size into an exported graph
    (found by the parity check on a batch of 3).
    """

    def __init__(self, channels: tuple[int, ...], layers: tuple[int, ...]) -> None:
        super().__init__(
            block="basic",
            layers=list(layers),
            block_inplanes=list(channels),
            spatial_dims=2,
            n_input_channels=1,
            conv1_t_size=7,
            conv1_t_stride=2,
            shortcut_type="B",
            feed_forward=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _conv(c_in: int, c_out: int, *, downsample: bool) -> Convolution:
    return Convolution(
        spatial_dims=2,
        in_channels=c_in,
        out_channels=c_out,
        strides=2 if downsample else 1,
        kernel_size=4 if downsample else 3,
        padding=1,
        act="RELU",
        norm="BATCH",
        bias=False,
    )


def build_network(config: Mapping[str, Any]) -> SuspicionNetwork:
    """Build the network named by ``config["name"]`` with random weights.

    Parameters
    ----------
    config
        Keys of :class:`NetworkConfig` (``name``, ``pooling``, ``topk_fraction``,
        ``lse_sharpness``, ``dropout``); missing keys take the defaults.

    Raises
    ------
    ConfigError
        If the name is not in :data:`NETWORKS` (the message lists the allowed names), a key
        is unknown, or a value is out of range.
    """
    cfg = NetworkConfig.from_dict(config)
    variant = cfg.variant
    backbone: nn.Module
    if variant.family == "tiny-cnn":
        backbone, channels = TinyCNN(variant.channels), variant.channels[-1]
    elif variant.family == "efficientnet":
        trunk = EfficientNetTrunk(variant.backbone)
        backbone, channels = trunk, trunk.out_channels
    else:
        backbone, channels = ResNetTrunk(variant.channels, variant.layers), variant.channels[-1]
    return SuspicionNetwork(backbone, feature_channels=channels, config=cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, int]) -> int:
    """Floating-point operations of one forward pass on one ``(1, 1, H, W)`` image.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode`: convolutions and matrix
    products only, two operations per multiply-add. Normalisation and activations add a
    few per cent on top.
    """
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, 1, *input_shape))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
