"""Inference test material without torch: a tiny hand-built ONNX model with its sidecar,
and DICOM exams with bright blobs where the model should find them.

The graph scores brightness: ``suspicion_map = AveragePool(image, stride) - offset`` and
``malignancy_logit = max(suspicion_map)``. A bright blob in a DICOM image therefore makes
the cells over it the most suspicious, so a test can check that a finding box lands on the
blob's ORIGINAL pixels through crop, flip, resize and reduced-resolution decoding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from dicom_builders import breast_pixels, mg_dataset, write
from mammotriage.sidecar import Aggregation, Calibration, Sidecar, sha256_of, write_sidecar

#: zscore parameters: tissue at 0.7 normalises to 1.6, a blob at 1.0 to 2.8, background -1.2.
PREPROCESS: dict[str, Any] = {
    "input_height": 128,
    "input_width": 64,
    "margin": 0.02,
    "normalisation": "zscore",
    "mean": 0.3,
    "std": 0.25,
    "version": "1",
}
STRIDE = 16
#: Between tissue (1.6) and blob (2.8): tissue cells score below 50, blob cells above.
OFFSET = 2.2


def tiny_model(
    folder: Path,
    *,
    name: str = "tiny-brightness",
    offset: float = OFFSET,
    stride: int = STRIDE,
    preprocess: dict[str, Any] | None = None,
    aggregation: Aggregation | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write ``folder/NAME.onnx`` and its sidecar ``folder/NAME.json``; return the .onnx."""
    import onnx
    from onnx import TensorProto, helper

    params = dict(PREPROCESS if preprocess is None else preprocess)
    height, width = params["input_height"], params["input_width"]
    graph = helper.make_graph(
        [
            helper.make_node(
                "AveragePool",
                ["image"],
                ["pooled"],
                kernel_shape=[stride, stride],
                strides=[stride, stride],
            ),
            helper.make_node("Sub", ["pooled", "offset"], ["suspicion_map"]),
            helper.make_node(
                "ReduceMax", ["suspicion_map"], ["malignancy_logit"], axes=[1, 2, 3], keepdims=0
            ),
        ],
        "tiny_brightness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, height, width])],
        [
            helper.make_tensor_value_info("malignancy_logit", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info(
                "suspicion_map",
                TensorProto.FLOAT,
                ["N", 1, height // stride, width // stride],
            ),
        ],
        initializer=[helper.make_tensor("offset", TensorProto.FLOAT, [], [offset])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    sidecar = Sidecar(
        name=name,
        onnx_file=path.name,
        sha256=sha256_of(path),
        created="2026-01-01T00:00:00Z",
        mammotriage_version="test",
        preprocess=params,
        map_stride=stride,
        aggregation=aggregation or Aggregation(),
        calibration=calibration or Calibration(),
    )
    write_sidecar(sidecar, path.with_suffix(".json"))
    return path


#: Box (x0, y0, x1, y1) in stored pixels.
Box = tuple[int, int, int, int]
#: Display convention for each (laterality, view): chest wall side and PatientOrientation.
_GEOMETRY = {
    ("L", "CC"): ("left", ["A", "R"]),
    ("R", "CC"): ("right", ["P", "L"]),
    ("L", "MLO"): ("left", ["A", "F"]),
    ("R", "MLO"): ("right", ["P", "F"]),
}
FOUR_VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def view_pixels(
    laterality: str,
    view: str,
    *,
    rows: int = 96,
    columns: int = 64,
    blob: Box | None = None,
    level: float = 1.0,
) -> np.ndarray:
    """A breast on the side its laterality is displayed on, with an optional bright blob
    at ``level`` (0-1 of the 12-bit range) over ``blob``."""
    chest_wall, _ = _GEOMETRY[(laterality, view)]
    pixels = breast_pixels(rows, columns, chest_wall=chest_wall)
    if blob is not None:
        x0, y0, x1, y1 = blob
        pixels[y0:y1, x0:x1] = int(4095 * level)
    return pixels


def write_view(
    path: Path,
    laterality: str,
    view: str,
    *,
    study: str,
    pixels: np.ndarray | None = None,
    **attrs: Any,
) -> Path:
    """One For Presentation view with a linear full-range window (so intensities are
    predictable) and the display-convention PatientOrientation."""
    _, orientation = _GEOMETRY[(laterality, view)]
    if pixels is None:
        pixels = view_pixels(laterality, view)
    defaults: dict[str, Any] = dict(
        ImageLaterality=laterality,
        ViewPosition=view,
        PatientOrientation=orientation,
        StudyInstanceUID=study,
        WindowCenter=2048,
        WindowWidth=4096,
    )
    return write(mg_dataset(pixels, **{**defaults, **attrs}), path)


def write_exam(
    folder: Path,
    *,
    study: str | None = None,
    blobs: dict[tuple[str, str], tuple[Box, float]] | None = None,
    views: tuple[tuple[str, str], ...] = FOUR_VIEWS,
) -> str:
    """Write a screening exam into ``folder``; ``blobs[(lat, view)] = (box, level)``.
    Returns the StudyInstanceUID (the exam id)."""
    study = study or generate_uid()
    for laterality, view in views:
        box, level = (blobs or {}).get((laterality, view), (None, 1.0))
        pixels = view_pixels(laterality, view, blob=box, level=level)
        write_view(folder / f"{laterality}{view}.dcm", laterality, view, study=study, pixels=pixels)
    return study


def double_unless_boom(item: str) -> str:
    """For the decode-pool tests: kills its worker process on ``"boom"``, as a codec
    crashing on a hostile file would."""
    if item == "boom":
        import os

        os._exit(1)
    return item * 2
