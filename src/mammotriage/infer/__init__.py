"""Inference with ONNX Runtime alone: never imports torch."""

from mammotriage.infer.session import OnnxModel

__all__ = ["OnnxModel"]
