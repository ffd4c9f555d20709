"""Stages 2 and 3 of a backfill, as Ray Data runs them: prepare (tasks) and score (actors).

:func:`prepare_batch` turns manifest rows into prepared exams: headers read, the exam built
as ``score`` builds it, the selected images decoded at the model's resolution and
preprocessed. Only the model-input tensors and the headers travel on (pickled in a
``payload`` column), never the DICOM bytes or the decoded pixels.

:class:`ScoreExams` holds one ONNX Runtime session per actor and scores many prepared exams
per call, batching images across exams; it hands back each exam's rows (:mod:`.rows`) as
JSON text, ready for the driver to write.

Nothing here raises for a bad exam: whatever goes wrong with one exam becomes that exam's
row with the reason.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mammotriage.dicom.decode import is_codec_failure, one_line

log = logging.getLogger(__name__)

_OK = "ok"
_FAILED = "failed"


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc)}"


def _sorted_paths(paths: Any) -> list[str]:
    """The exam's files in the order ``score`` meets them (path order, part by part)."""
    return sorted((str(p) for p in paths), key=lambda p: Path(p).parts)


def prepare_batch(batch: dict[str, np.ndarray], *, preprocess: dict[str, Any]) -> dict[str, Any]:
    """Ray Data batch function: manifest rows in, ``shard``, ``exam_id`` and ``payload``
    (a pickled prepared exam, or the reason preparing it failed) out."""
    from mammotriage.dicom.exams import build_exam
    from mammotriage.infer.exam_batch import prepare_exam
    from mammotriage.infer.prepare import read_header
    from mammotriage.preprocess import PreprocessParams

    params = PreprocessParams.from_dict(preprocess)
    payloads = []
    for exam_id, source, paths in zip(
        batch["exam_id"], batch["exam_id_source"], batch["paths"], strict=True
    ):
        files = _sorted_paths(paths)
        payload: tuple[str, Any]
        try:
            images = [read_header(Path(p)) for p in files]
            prepared = prepare_exam(build_exam(str(exam_id), str(source), images), params)
            payload = (_OK, prepared)
        except BaseException as exc:  # one exam never stops the run
            if not is_codec_failure(exc):  # interrupts and exits are not this exam's fault
                raise
            log.warning("preparing an exam failed: %s", _why(exc))
            payload = (_FAILED, (str(source), files, f"preparing the exam failed: {_why(exc)}"))
        payloads.append(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    return {
        "shard": np.asarray(batch["shard"], dtype=np.int32),
        "exam_id": [str(e) for e in batch["exam_id"]],
        "payload": payloads,
    }


class ScoreExams:
    """Ray Data callable class: one ONNX Runtime session per actor.

    Parameters
    ----------
    model
        The ``.onnx`` file (readable at this path on every node) with its sidecar.
    policy
        The triage policy as a dict (``TriagePolicy.model_dump()``).
    providers, threads, batch_size
        ONNX Runtime providers and intra-op threads; images per model call.
    """

    def __init__(
        self,
        model: str,
        policy: dict[str, Any],
        *,
        providers: list[str] | None = None,
        threads: int | None = None,
        batch_size: int = 8,
    ) -> None:
        from mammotriage.infer.session import OnnxModel
        from mammotriage.triage import policy_from_dict

        self.model = OnnxModel(Path(model), providers=providers, intra_op_threads=threads)
        self.policy = policy_from_dict(policy)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        decoded = [pickle.loads(bytes(p)) for p in batch["payload"]]
        shards = [int(s) for s in batch["shard"]]
        exam_ids = [str(e) for e in batch["exam_id"]]
        rows: list[tuple[dict[str, Any], list[dict[str, Any]]] | None] = [None] * len(decoded)
        ready = [
            (i, payload) for i, (kind, payload) in enumerate(decoded) if kind == _OK
        ]
        for i, (kind, payload) in enumerate(decoded):
            if kind != _OK:
                source, files, reason = payload
                rows[i] = self._failed(exam_ids[i], source, files, reason, shards[i])
        try:
            self._score([p for _, p in ready], [i for i, _ in ready], shards, rows)
        except Exception as exc:  # one exam's failure must not cost the others: one by one
            log.warning("scoring a batch failed (%s); scoring its exams one by one", _why(exc))
            for i, prepared in ready:
                try:
                    self._score([prepared], [i], shards, rows)
                except Exception as one:
                    paths = [str(im.path) for im in prepared.exam.images if im.path]
                    rows[i] = self._failed(
                        exam_ids[i],
                        prepared.exam.exam_id_source,
                        paths,
                        f"scoring the exam failed: {_why(one)}",
                        shards[i],
                    )
        return {
            "shard": np.asarray(shards, dtype=np.int32),
            "exam_id": exam_ids,
            "exam_row": [json.dumps(r[0], allow_nan=False) for r in rows if r is not None],
            "image_rows": [json.dumps(r[1], allow_nan=False) for r in rows if r is not None],
        }

    def _score(
        self,
        prepared: list[Any],
        where: list[int],
        shards: list[int],
        rows: list[tuple[dict[str, Any], list[dict[str, Any]]] | None],
    ) -> None:
        from mammotriage.backfill.rows import exam_rows
        from mammotriage.infer.exam_batch import score_prepared

        if not prepared:
            return
        scored = score_prepared(self.model, prepared, batch_size=self.batch_size)
        demonstration = self.model.sidecar.demonstration
        for i, exam, result in zip(where, prepared, scored, strict=True):
            rows[i] = exam_rows(
                exam.exam, result, self.policy, shard=shards[i], demonstration=demonstration
            )

    def _failed(
        self, exam_id: str, source: str, files: list[str], reason: str, shard: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from mammotriage.backfill.rows import failed_rows

        sidecar = self.model.sidecar
        return failed_rows(
            exam_id,
            source,
            files,
            reason,
            self.policy,
            shard=shard,
            model_name=sidecar.name,
            model_sha256=sidecar.sha256,
            demonstration=sidecar.demonstration,
        )
