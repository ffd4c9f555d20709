"""Training side: the MONAI network, datasets, training, validation metrics and export to
ONNX with verified parity.

The only package that imports torch and MONAI, and only in the submodules that need them
(``network``, ``export``, ``train``, ``release``, ``torch_data``): the names below load on
first use, so ``mammotriage.model.metrics`` or ``.datasets`` stay usable on an ONNX Runtime
install. Everything handed to the inference side crosses as files: ``models/NAME.onnx``
and its sidecar ``models/NAME.json``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "add_variants": "export",
    "export_onnx": "export",
    "quantize_int8": "export",
    "to_fp16": "export",
    "variant_path": "export",
    "NETWORKS": "network",
    "MapPooling": "network",
    "NetworkConfig": "network",
    "NetworkVariant": "network",
    "SuspicionNetwork": "network",
    "build_network": "network",
    "count_flops": "network",
    "count_parameters": "network",
}

# A literal list, so that linters and type checkers see what the lazy names export.
__all__ = [
    "NETWORKS",
    "MapPooling",
    "NetworkConfig",
    "NetworkVariant",
    "SuspicionNetwork",
    "add_variants",
    "build_network",
    "count_flops",
    "count_parameters",
    "export_onnx",
    "quantize_int8",
    "to_fp16",
    "variant_path",
]

if TYPE_CHECKING:
    from mammotriage.model.export import (
        add_variants,
        export_onnx,
        quantize_int8,
        to_fp16,
        variant_path,
    )
    from mammotriage.model.network import (
        NETWORKS,
        MapPooling,
        NetworkConfig,
        NetworkVariant,
        SuspicionNetwork,
        build_network,
        count_flops,
        count_parameters,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"mammotriage.model.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mammotriage.model' has no attribute {name!r}")
