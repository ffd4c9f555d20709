"""Inference with ONNX Runtime alone: never imports torch."""

from mammotriage.infer.engine import ScoringEngine
from mammotriage.infer.scores import ExamScore, Finding, ImageScore, category_of
from mammotriage.infer.session import OnnxModel

__all__ = ["ExamScore", "Finding", "ImageScore", "OnnxModel", "ScoringEngine", "category_of"]
