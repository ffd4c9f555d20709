"""Scoring an archive on Ray Data before go-live: ``mammotriage backfill``.

Years of screening exams are scored restartably, on this machine (an embedded Ray) or on a
Ray cluster, into Parquet that ``mammotriage evaluate`` joins with the outcomes:

- :mod:`.inputs`: folders of DICOM files and manifests of exported archives;
- :mod:`.index`: stage 1, headers only, exams grouped as ``score`` groups them, a sharded
  deterministic manifest;
- :mod:`.stages`: stages 2 and 3, prepare (Ray tasks: model-input tensors, no DICOM bytes)
  and score (an actor pool of ONNX Runtime sessions);
- :mod:`.rows` and :mod:`.schema`: what is written, column by column;
- :mod:`.run`: the driver, shard by shard, restartable.

Ray is imported only when a backfill runs (the ``backfill`` extra); the schema and the rows
need pyarrow alone, so ``evaluate`` reads the results without Ray.
"""
