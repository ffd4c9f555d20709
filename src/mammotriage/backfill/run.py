"""A backfill from start to finish: index, prepare, score, write; restartable.

The driver (this process) indexes the inputs once (:mod:`.index`), then builds one Ray Data
pipeline over the shards not yet done::

    read_parquet(manifest shards) -> map_batches(prepare_batch)      tasks, one exam each
                                  -> map_batches(ScoreExams)        actor pool, ONNX Runtime
                                  -> driver: rows gathered per shard -> Parquet, shard by shard

A shard's two result files are written under temporary names and renamed, images first; the
``exams`` file is the shard's success marker. Kill the driver (or the machine) at any moment
and run the same command again: the manifest is kept, finished shards are skipped, a shard
cut short is scored again from the start, so the finished output holds every exam once.

Without ``address`` the driver starts a Ray of its own on this machine, sized to it, and
stops it at the end; with ``address`` it joins an existing cluster (``ray start``, ``ray up``,
KubeRay), whose nodes must see the input files and the model at the same paths.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammotriage.backfill.index import (
    MANIFEST_DIR,
    group,
    header_keys,
    manifest_files,
    read_manifest_counts,
    write_manifest,
)
from mammotriage.backfill.inputs import collect_inputs
from mammotriage.backfill.schema import (
    EXAM_SCHEMA,
    IMAGE_SCHEMA,
    MANIFEST_SCHEMA,
    STATUSES,
    exam_files,
    shard_name,
)
from mammotriage.errors import ConfigError

log = logging.getLogger(__name__)

REQUEST_FILE = "backfill.json"
#: Logical CPUs one scoring actor reserves.
ACTOR_CPUS = 0.5
#: Exams per Ray Data block (one prepare task), and shards per pipeline run.
BLOCK_EXAMS = 4
WAVE_SHARDS = 64
#: Seconds a file may take to decode when a lost exam is scored alone.
ALONE_DECODE_TIMEOUT_S = 120.0
SUMMARY_FILE = "summary.json"
#: ``progress(done, total)``: exams scored in this run, and how many this run has to score.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BackfillOptions:
    """How to run a backfill (the command's options)."""

    model: Path
    policy: Path | None = None
    #: A Ray cluster to join (``ray://host:10001`` or ``host:6379``); None: start one here.
    address: str | None = None
    #: Scoring actors (ONNX Runtime sessions).
    workers: int = 1
    #: Exams per shard of the manifest and of the results.
    shard_size: int = 256
    #: Images per ONNX Runtime call; exams per actor call.
    batch_size: int = 8
    exams_per_call: int = 4
    #: ONNX Runtime intra-op threads per actor (None: ONNX Runtime's default).
    threads: int | None = 1
    providers: tuple[str, ...] | None = None
    #: Logical CPUs of an embedded Ray (None: this machine's cores, plus one for the
    #: actors' share, at least 3).
    num_cpus: int | None = None
    #: Object store of an embedded Ray, in MiB.
    object_store_mb: int = 512


@dataclass
class BackfillSummary:
    """What a backfill did: counts per outcome, where the output is, how long it took."""

    out: Path
    exams: int
    images: int
    shards: int
    #: Shards found finished when this run started (a resumed run).
    shards_already_done: int
    exams_scored_now: int
    by_status: dict[str, int]
    by_reading_mode: dict[str, int]
    #: Seconds: the whole command, Ray start, the index, the scoring pipeline.
    wall_s: float
    startup_s: float
    index_s: float
    scoring_s: float
    ray_address: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["out"] = str(self.out)
        return data


def _request(inputs: Sequence[Path], options: BackfillOptions, sha256: str) -> dict[str, Any]:
    return {
        "inputs": sorted(os.path.abspath(Path(p).expanduser()) for p in inputs),
        "model_sha256": sha256,
        "shard_size": options.shard_size,
    }


def _check_request(out: Path, request: dict[str, Any]) -> bool:
    """Record what this folder is for, or check that a rerun asks for the same; True when
    the folder already held this backfill (a resumed run)."""
    path = out / REQUEST_FILE
    if path.exists():
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read ({exc}); use a new --out") from exc
        for key, value in request.items():
            if known.get(key) != value:
                raise ConfigError(
                    f"{out} holds a backfill with another {key.replace('_', ' ')} "
                    f"({known.get(key)!r}, asked {value!r}); use a new --out, or delete it"
                )
        return True
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(request, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return False


def _stored_inputs(out: Path) -> list[str]:
    try:
        inputs = json.loads((out / REQUEST_FILE).read_text(encoding="utf-8"))["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        inputs = None
    if not inputs:
        raise ConfigError(
            f"nothing to backfill: give folders of DICOM files or manifests ({out} holds no "
            "backfill to resume)"
        )
    return [str(p) for p in inputs]


@contextmanager
def ray_session(options: BackfillOptions) -> Iterator[str]:
    """Ray for this backfill: the one already started in this process, the cluster at
    ``options.address``, or a local one sized to the machine (stopped on exit)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "backfill needs Ray Data: pip install 'mammotriage[backfill]'"
        ) from exc
    if ray.is_initialized():
        yield str(ray.get_runtime_context().gcs_address)
        return
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if options.address:
            ray.init(address=options.address, **quiet)  # type: ignore[arg-type]
        else:
            cores = os.cpu_count() or 1
            cpus = options.num_cpus or max(3, cores + math.ceil(ACTOR_CPUS * options.workers))
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                object_store_memory=options.object_store_mb * 1024 * 1024,
                **quiet,  # type: ignore[arg-type]
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = options.address or "a local Ray"
        raise ConfigError(f"cannot start Ray ({where}): {exc}") from exc
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def _data_context() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # Ray Data's own notes (no progress bars: we draw ours) are not for the operator.
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _index(out: Path, inputs: Sequence[Path], options: BackfillOptions) -> None:
    """Stage 1: every file's exam key from its header, then the manifest. On a cluster the
    headers are read in Ray tasks (the nodes hold the archive's mounts and the bandwidth);
    on this machine in a pool of threads, which starts at once."""
    files = collect_inputs(inputs)
    unnamed = [f.path for f in files if f.exam_id is None]
    keys: list[tuple[str, str, str]] = []
    if unnamed and options.address:
        import ray

        ds = ray.data.from_items([{"path": p} for p in unnamed]).map_batches(
            header_keys, batch_size=64, batch_format="numpy"
        )
        keys = [(r["path"], r["exam_id"], r["exam_id_source"]) for r in ds.iter_rows()]
    elif unnamed:
        chunks = [unnamed[i : i + 64] for i in range(0, len(unnamed), 64)]
        with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="backfill-index") as pool:
            for got in pool.map(lambda chunk: header_keys({"path": chunk}), chunks):
                keys += zip(got["path"], got["exam_id"], got["exam_id_source"], strict=True)
    exams = group(files, keys, options.shard_size)
    write_manifest(out, exams)
    log.info("indexed %d files into %d exams", len(files), len(exams))


def _write_shard(out: Path, shard: int, exams: list[dict[str, Any]], images: list[dict[str, Any]]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = shard_name(shard)
    for folder, rows, schema in (("images", images, IMAGE_SCHEMA), ("exams", exams, EXAM_SCHEMA)):
        rows = sorted(rows, key=lambda r: (r["exam_id"], r.get("path") or ""))
        target = out / folder / name
        tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
        os.replace(tmp, target)


class _Shards:
    """Rows gathered per shard on the driver; a shard is written once it is complete."""

    def __init__(self, out: Path, expected: dict[int, int], progress: Progress | None) -> None:
        self.out = out
        self.expected = expected
        self.progress = progress
        self.total = sum(expected.values())
        self.done = 0
        self.rows: dict[int, tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]] = {}
        self.written: set[int] = set()

    def add(self, shard: int, exam: dict[str, Any], images: list[dict[str, Any]]) -> None:
        exams, shard_images = self.rows.setdefault(shard, ({}, []))
        if exam["exam_id"] in exams or shard in self.written:  # a retried task's copy
            return
        exams[exam["exam_id"]] = exam
        shard_images.extend(images)
        self.done += 1
        if len(exams) == self.expected[shard]:
            _write_shard(self.out, shard, list(exams.values()), shard_images)
            self.written.add(shard)
            del self.rows[shard]
        if self.progress is not None:
            self.progress(self.done, self.total)

    def have(self, shard: int) -> set[str]:
        return set(self.rows.get(shard, ({}, []))[0])


def _pipeline(
    out: Path,
    wave: list[int],
    shards: _Shards,
    options: BackfillOptions,
    sidecar_preprocess: dict[str, Any],
    policy: dict[str, Any],
) -> None:
    """One Ray Data pipeline over the shards of ``wave``: prepare, score, gather."""
    import pyarrow.parquet as pq
    import ray


    manifests = manifest_files(out)
    gpus = 1 if options.providers and "CUDAExecutionProvider" in options.providers else 0
    # The driver reads the manifest and hands it to Ray in blocks of a few exams (a block is
    # one prepare task): the nodes then need to see only the DICOM files and the model.
    blocks = []
    for shard in wave:
        table = pq.read_table(manifests[shard], schema=MANIFEST_SCHEMA)
        blocks += [table.slice(i, BLOCK_EXAMS) for i in range(0, table.num_rows, BLOCK_EXAMS)]
    with warnings.catch_warnings():  # max_retries goes through the deprecated **kwargs
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = _stages(ray.data.from_arrow(blocks), options, sidecar_preprocess, policy, gpus)
    for row in ds.iter_rows():
        shards.add(int(row["shard"]), json.loads(row["exam_row"]), json.loads(row["image_rows"]))


def _stages(
    ds: Any,
    options: BackfillOptions,
    sidecar_preprocess: dict[str, Any],
    policy: dict[str, Any],
    gpus: int,
) -> Any:
    """``ds`` (manifest rows) prepared in tasks and scored in the actor pool."""
    from ray.data import ActorPoolStrategy

    from mammotriage.backfill.stages import ScoreExams, prepare_batch

    return (
        ds
        .map_batches(
            prepare_batch,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={"preprocess": sidecar_preprocess},
            num_cpus=1,
            # A task whose process a codec kills is retried twice (Ray Data's own default
            # retries without end); then its block is dropped and its exams are scored one
            # by one, isolated, after the pipeline. Ray 2.60 has no named parameter for it.
            max_retries=2,
        )
        .map_batches(
            ScoreExams,
            batch_size=options.exams_per_call,
            batch_format="numpy",
            fn_constructor_args=(str(options.model), policy),
            fn_constructor_kwargs={
                "providers": list(options.providers) if options.providers else None,
                "threads": options.threads,
                "batch_size": options.batch_size,
            },
            compute=ActorPoolStrategy(size=options.workers),
            # An actor waits for prepared exams most of the time (decoding costs tens to
            # hundreds of milliseconds an image, the model a few): it reserves half a CPU,
            # so the decode tasks get the cores. (Unequal resources also keep Ray Data from
            # fusing the two stages into the actor, which would decode in one process.)
            num_cpus=ACTOR_CPUS,
            num_gpus=gpus,
        )
    )


def _score_alone(
    out: Path, shard: int, shards: _Shards, options: BackfillOptions, policy: dict[str, Any]
) -> None:
    """Score the exams of ``shard`` that the pipeline lost (their decode task died and its
    retries too) here, one exam at a time, each file decoded in a process of its own: a
    file that kills its decoder is pinned on that file, as the worker does."""
    import pyarrow.parquet as pq

    from mammotriage.backfill.rows import exam_rows, failed_rows
    from mammotriage.dicom.exams import build_exam
    from mammotriage.infer.engine import ScoringEngine
    from mammotriage.triage import policy_from_dict

    rules = policy_from_dict(policy)
    have = shards.have(shard)
    lost = [
        row
        for row in pq.read_table(manifest_files(out)[shard], schema=MANIFEST_SCHEMA).to_pylist()
        if row["exam_id"] not in have
    ]
    log.warning(
        "%d exams of shard %d were lost with their decode task; scoring them one by one",
        len(lost),
        shard,
    )
    with ScoringEngine(
        options.model,
        batch_size=options.batch_size,
        decode_workers=1,
        executor="process",
        decode_timeout=ALONE_DECODE_TIMEOUT_S,
        providers=options.providers,
        threads=options.threads,
    ) as engine:
        sidecar = engine.sidecar
        for row in lost:
            try:
                images = engine.read_headers(row["paths"])
                exam = build_exam(row["exam_id"], row["exam_id_source"], images)
                [scored] = engine.score_exams([exam])
                exam_row, image_rows = exam_rows(
                    exam, scored, rules, shard=shard, demonstration=sidecar.demonstration
                )
            except Exception as exc:  # the exam, not the run
                exam_row, image_rows = failed_rows(
                    row["exam_id"],
                    row["exam_id_source"],
                    row["paths"],
                    f"scoring the exam failed: {type(exc).__name__}: {exc}",
                    rules,
                    shard=shard,
                    model_name=sidecar.name,
                    model_sha256=sidecar.sha256,
                    demonstration=sidecar.demonstration,
                )
            shards.add(shard, exam_row, image_rows)


def _score(
    out: Path,
    pending: dict[int, int],
    options: BackfillOptions,
    sidecar_preprocess: dict[str, Any],
    policy: dict[str, Any],
    progress: Progress | None,
) -> int:
    """Score the exams of the ``pending`` shards (shard -> exam count), a wave of shards
    per pipeline (so the driver holds a bounded number of blocks and rows)."""
    from ray.data import DataContext

    # A block whose task failed for good is dropped, not the run: its exams are scored
    # alone afterwards (_score_alone).
    DataContext.get_current().max_errored_blocks = -1
    shards = _Shards(out, pending, progress)
    if progress is not None:
        progress(0, shards.total)
    order = sorted(pending)
    for start in range(0, len(order), WAVE_SHARDS):
        wave = order[start : start + WAVE_SHARDS]
        _pipeline(out, wave, shards, options, sidecar_preprocess, policy)
        for shard in wave:
            if shard not in shards.written:
                _score_alone(out, shard, shards, options, policy)
    return shards.done


def _summarise(out: Path) -> tuple[int, int, dict[str, int], dict[str, int]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mammotriage.backfill.schema import image_files

    exams = pq.read_table(exam_files(out), columns=["status", "reading_mode"]) if exam_files(
        out
    ) else None
    by_status = dict.fromkeys(STATUSES, 0)
    modes: dict[str, int] = {}
    if exams is not None:
        for column, into in (("status", by_status), ("reading_mode", modes)):
            for entry in pc.value_counts(exams.column(column)).to_pylist():
                into[str(entry["values"])] = into.get(str(entry["values"]), 0) + entry["counts"]
    images = sum(pq.read_metadata(p).num_rows for p in image_files(out))
    return (0 if exams is None else exams.num_rows), images, by_status, modes


def run_backfill(
    inputs: Sequence[Path],
    out: Path,
    options: BackfillOptions,
    *,
    progress: Progress | None = None,
) -> BackfillSummary:
    """Index ``inputs`` (first run only) and score every exam not yet written under ``out``.

    Raises
    ------
    ConfigError
        If the model, the policy or the inputs are invalid, ``out`` holds another backfill,
        Ray cannot start, or the pipeline fails as a whole.
    """
    from mammotriage import defaults
    from mammotriage.sidecar import load_sidecar
    from mammotriage.triage import load_policy

    started = time.monotonic()
    if not Path(options.model).is_file():
        raise ConfigError(f"model {options.model} not found")
    for name, value in (
        ("workers", options.workers),
        ("shard_size", options.shard_size),
        ("batch_size", options.batch_size),
        ("exams_per_call", options.exams_per_call),
    ):
        if value < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {value}")
    sidecar = load_sidecar(Path(options.model))
    policy = load_policy(options.policy or defaults.policy_path())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("exams", "images"):
        (out / folder).mkdir(exist_ok=True)
        for stale in (out / folder).glob(".part-*.tmp-*"):  # a killed run's unfinished files
            stale.unlink(missing_ok=True)
    for stale in out.glob(f".{MANIFEST_DIR}.building-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if not inputs:  # a rerun may name no inputs: those of the backfill it resumes
        inputs = [Path(p) for p in _stored_inputs(out)]
    _check_request(out, _request(inputs, options, sidecar.sha256))

    with ray_session(options) as address:
        _data_context()
        ready = time.monotonic()
        if not (out / MANIFEST_DIR).is_dir():
            _index(out, inputs, options)
        indexed = time.monotonic()
        counts = read_manifest_counts(out)
        already = {s for s in counts if (out / "exams" / shard_name(s)).exists()}
        pending = {s: n for s, n in counts.items() if s not in already}
        scored_now = 0
        if pending:
            scored_now = _score(
                out, pending, options, dict(sidecar.preprocess), policy.model_dump(), progress
            )
        finished = time.monotonic()

    exams, images, by_status, modes = _summarise(out)
    summary = BackfillSummary(
        out=out,
        exams=exams,
        images=images,
        shards=len(counts),
        shards_already_done=len(already),
        exams_scored_now=scored_now,
        by_status=by_status,
        by_reading_mode=modes,
        wall_s=round(time.monotonic() - started, 2),
        startup_s=round(ready - started, 2),
        index_s=round(indexed - ready, 2),
        scoring_s=round(finished - indexed, 2),
        ray_address=address,
    )
    tmp = out / f".{SUMMARY_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / SUMMARY_FILE)
    return summary
