"""An ONNX Runtime session built from a model and its sidecar.

Providers default to what the installed runtime offers, best first (TensorRT, CUDA, CPU);
a site can name its own. Thread counts are explicit so that a worker sharing a machine
with a PACS can be kept in its lane.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mammotriage.errors import ConfigError
from mammotriage.sidecar import Sidecar, load_sidecar

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(requested: Sequence[str] | None = None) -> list[str]:
    """The providers to use: ``requested`` (checked) or the best available.

    Raises
    ------
    ConfigError
        If a requested provider is not available in this ONNX Runtime build.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ConfigError(
                f"ONNX Runtime provider(s) {', '.join(missing)} not available; this build has "
                f"{', '.join(available)}"
            )
        return list(requested)
    return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)


class OnnxModel:
    """A loaded model: ``predict(batch) -> (logits (N,), suspicion maps (N, 1, h, w))``."""

    def __init__(
        self,
        path: Path,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
        verify_hash: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"model {self.path} not found")
        self.sidecar: Sidecar = load_sidecar(self.path, verify_hash=verify_hash)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        self.providers = choose_providers(providers)
        self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        outputs = self.sidecar.outputs
        self._input = outputs.input
        self._outputs = [outputs.logit, outputs.suspicion_map]

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.sidecar.input_shape

    def predict(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run one batch of preprocessed images, shape (N, 1, H, W)."""
        feed = {self._input: np.ascontiguousarray(batch, dtype=np.float32)}
        logits, maps = self.session.run(self._outputs, feed)
        return np.asarray(logits).reshape(-1), np.asarray(maps)
