"""Read mutants in forked children, with a wall-time and an address-space limit, and say
what happened to each.

The parent imports the reader and warms its codecs once; each read then costs one
``fork`` (a few ms) instead of a Python start. A child sets ``RLIMIT_AS`` (and no core
files) on itself only, reads the file with ``read_image(..., load_pixels=True)``, checks the
image and writes one JSON line into a pipe; the parent kills it at the time limit and takes
its peak RSS and CPU time from ``wait4``.

Outcomes: ``usable`` and ``unusable`` are fine; every other one is a finding:

- ``escaped``: an exception (any ``BaseException``, Rust panics included) left read_image;
- ``crash``: the child died of a signal or exited without a result;
- ``timeout``: the read took longer than the limit (killed);
- ``memory``: a MemoryError (the reason or the exception says so), or a peak RSS above
  the RSS limit;
- ``nonfinite``: a usable image with NaN or infinite pixels; ``no_pixels``: usable without
  pixels though they were asked for; ``tiny_usable``: usable with a side under MIN_SIDE;
- ``long_reason``: a reason longer than the cap or not on one line;
- ``harness_error``: the mutation itself failed (a bug of the harness, not of the reader).
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fuzzing.mutate import Mutant
from mammotriage.dicom import model as _model

GOOD = frozenset({"usable", "unusable"})
#: A mammogram is thousands of pixels a side; a usable image under this is a misread header.
MIN_SIDE = 32
#: The reader's own cap on a reason (``dicom.model.REASON_CAP``), 200 where it sets none.
REASON_CAP: int = getattr(_model, "REASON_CAP", 200)
RSS_LIMIT_MB = 1536.0


@dataclass(frozen=True)
class Task:
    """One mutant: rebuilt by ``mutate.build(seeds[seed], mutation, rng_seed)``."""

    seed: str
    mutation: str
    rng_seed: int


@dataclass
class Result:
    task: Task
    outcome: str
    detail: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    size: int = 0
    note: str = ""
    mutant: Mutant | None = field(default=None, repr=False)

    @property
    def bad(self) -> bool:
        return self.outcome not in GOOD

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("mutant")
        out.update(out.pop("task"))
        return out


def _status_kb(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child(
    path: Path, fd: int, err_path: Path, as_limit: int, cpu_s: int, read_kwargs: dict[str, Any]
) -> None:
    """In the forked child: read, check, report through ``fd``; never returns."""
    status = 0
    try:
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(err, 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 2))  # SIGXCPU, then SIGKILL
        import numpy as np

        from mammotriage.dicom import read_image

        result: dict[str, Any] = {}
        start = time.perf_counter()
        try:
            image = read_image(path, **read_kwargs)
        except BaseException as exc:  # noqa: B036 - a Rust panic is a BaseException
            result["escaped"] = type(exc).__name__
            result["message"] = " ".join(str(exc).split())[:300]
        else:
            result["usable"] = bool(image.usable)
            reason = image.reason or ""
            result["reason"] = reason[:300]
            result["reason_len"] = len(reason)
            result["reason_lines"] = len(reason.splitlines())
            result["rows"] = image.rows
            result["columns"] = image.columns
            if image.pixels is not None:
                pixels = np.asarray(image.pixels)
                result["shape"] = list(pixels.shape)
                result["finite"] = bool(np.isfinite(pixels).all())
            else:
                result["shape"] = None
        result["wall"] = time.perf_counter() - start
        os.write(fd, json.dumps(result).encode())
    except BaseException:  # noqa: B036 - nothing may leave the child but its exit status
        status = 3
    finally:
        os._exit(status)


@dataclass
class _Running:
    task: Task
    mutant: Mutant
    pid: int
    fd: int
    started: float
    slot: int
    buffer: bytearray = field(default_factory=bytearray)
    killed: bool = False


class Runner:
    """Reads mutants ``jobs`` at a time in forked children."""

    def __init__(
        self,
        workdir: Path,
        *,
        jobs: int = 2,
        timeout_s: float = 10.0,
        wall_timeout_s: float | None = None,
        as_headroom: int = 3 << 30,
        reason_cap: int = REASON_CAP,
        rss_limit_mb: float = RSS_LIMIT_MB,
        read_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.jobs = max(1, jobs)
        # CPU time is what a read costs; wall time on a shared machine also counts the
        # others' load, so the child is killed on CPU time (RLIMIT_CPU) at ``timeout_s`` and
        # on wall time only at ``wall_timeout_s`` (3x by default).
        self.timeout_s = timeout_s
        self.cpu_limit = max(1, round(timeout_s))
        self.wall_timeout_s = wall_timeout_s or 3 * timeout_s
        self.reason_cap = reason_cap
        self.rss_limit_mb = rss_limit_mb
        self.read_kwargs: dict[str, Any] = {"load_pixels": True, "target_shape": (512, 256)}
        self.read_kwargs.update(read_kwargs or {})
        workdir.mkdir(parents=True, exist_ok=True)
        # The child inherits the parent's mappings: the limit is what it may add to them,
        # and never less than the absolute figure asked for.
        self.as_limit = max(as_headroom, _status_kb("VmSize") * 1024 + as_headroom // 2)
        self.baseline_rss_mb = _status_kb("VmRSS") / 1024

    def warm(self, paths: Iterable[Path]) -> None:
        """Read each file once here, so that every codec module is imported before forks."""
        from mammotriage.dicom import read_image

        for path in paths:
            read_image(path, **self.read_kwargs)
        self.baseline_rss_mb = _status_kb("VmRSS") / 1024

    def run(self, tasks: Iterable[tuple[Task, Callable[[], Mutant]]]) -> Iterator[Result]:
        """Yield a :class:`Result` per task, in completion order."""
        selector = selectors.DefaultSelector()
        running: dict[int, _Running] = {}
        free_slots = list(range(self.jobs))
        pending = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and free_slots:
                    try:
                        task, make = next(pending)
                    except StopIteration:
                        exhausted = True
                        break
                    try:
                        mutant = make()
                    except Exception as exc:
                        yield Result(task, "harness_error", f"{type(exc).__name__}: {exc}"[:300])
                        continue
                    slot = free_slots.pop()
                    job = self._start(task, mutant, slot)
                    running[job.fd] = job
                    selector.register(job.fd, selectors.EVENT_READ)
                if not running:
                    return
                deadline = min(job.started for job in running.values()) + self.wall_timeout_s
                events = selector.select(timeout=max(0.0, deadline - time.monotonic()))
                for key, _ in events:
                    job = running[int(key.fd)]
                    chunk = os.read(job.fd, 1 << 16)
                    if chunk:
                        job.buffer.extend(chunk)
                        continue
                    selector.unregister(job.fd)
                    del running[job.fd]
                    free_slots.append(job.slot)
                    yield self._finish(job)
                now = time.monotonic()
                for job in list(running.values()):
                    if not job.killed and now - job.started > self.wall_timeout_s:
                        job.killed = True
                        os.kill(job.pid, signal.SIGKILL)  # EOF on the pipe follows
        finally:
            for job in running.values():
                os.kill(job.pid, signal.SIGKILL)
                os.waitpid(job.pid, 0)
                os.close(job.fd)
            selector.close()

    def _paths(self, slot: int) -> tuple[Path, Path]:
        return self.workdir / f"slot{slot}.dcm", self.workdir / f"slot{slot}.err"

    def _start(self, task: Task, mutant: Mutant, slot: int) -> _Running:
        path, err_path = self._paths(slot)
        mutant.write(path)
        read_fd, write_fd = os.pipe()
        with warnings.catch_warnings():  # 3.12 warns about fork in a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(path, write_fd, err_path, self.as_limit, self.cpu_limit, self.read_kwargs)
        os.close(write_fd)
        return _Running(task, mutant, pid, read_fd, time.monotonic(), slot)

    def _finish(self, job: _Running) -> Result:
        _, status, usage = os.wait4(job.pid, 0)
        os.close(job.fd)
        path, err_path = self._paths(job.slot)
        wall = time.monotonic() - job.started
        result = Result(
            job.task,
            "unusable",
            wall_s=round(wall, 3),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
            peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
            size=job.mutant.size,
            note=job.mutant.note,
            mutant=job.mutant,
        )
        try:
            stderr = err_path.read_bytes()[-600:].decode("utf-8", "replace")
        except OSError:
            stderr = ""
        path.unlink(missing_ok=True)
        self._classify(result, job, status, stderr)
        # A forked child starts with the parent's resident pages in its RSS: what the read
        # needs is its peak above the parent's (a pytest worker that ran other tests first
        # may hold well over a gigabyte).
        added = result.peak_rss_mb - self.baseline_rss_mb
        if result.outcome in GOOD and added > self.rss_limit_mb:
            result.detail = (
                f"peak RSS {result.peak_rss_mb:.0f} MB ({added:.0f} MB above the parent's); "
                f"was {result.outcome}: " + result.detail
            )
            result.outcome = "memory"
        return result

    def _classify(self, result: Result, job: _Running, status: int, stderr: str) -> None:
        tail = " ".join(stderr.split())[-300:]
        if job.killed:
            result.outcome = "timeout"
            result.detail = f"killed after {self.wall_timeout_s:g} s wall ({result.cpu_s} s CPU)"
            return
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            if sig == "SIGXCPU" or (sig == "SIGKILL" and result.cpu_s >= self.cpu_limit):
                result.outcome = "timeout"
                result.detail = f"over {self.cpu_limit} s CPU ({result.wall_s} s wall)"
                return
            memory = "bad_alloc" in stderr or "memory" in stderr.lower()
            result.outcome = "memory" if memory else "crash"
            result.detail = f"{sig}: {tail}"
            return
        try:
            data = json.loads(bytes(job.buffer)) if job.buffer else None
        except ValueError:
            data = None
        if data is None:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
            result.outcome, result.detail = "crash", f"exit {code} without a result: {tail}"
            return
        result.wall_s = round(float(data.get("wall", result.wall_s)), 3)
        if result.cpu_s > self.timeout_s:  # finished, but only just inside the hard limit
            result.outcome = "timeout"
            result.detail = f"{result.cpu_s} s CPU ({result.wall_s} s wall)"
            return
        if "escaped" in data:
            kind = data["escaped"]
            result.outcome = "memory" if kind == "MemoryError" else "escaped"
            result.detail = f"{kind}: {data.get('message', '')}"
            return
        reason = data.get("reason", "")
        if not data["usable"]:
            result.detail = reason
            if "MemoryError" in reason:
                result.outcome = "memory"
            elif data["reason_len"] > self.reason_cap or data["reason_lines"] > 1:
                result.outcome = "long_reason"
                result.detail = (
                    f"{data['reason_len']} chars, {data['reason_lines']} lines: " + (reason[:150])
                )
            elif not reason.strip():
                result.outcome, result.detail = "long_reason", "unusable without a reason"
            return
        shape = data.get("shape")
        result.detail = f"{data['rows']}x{data['columns']} pixels {shape}"
        if shape is None:
            result.outcome = "no_pixels"
        elif not data.get("finite", False):
            result.outcome = "nonfinite"
        elif min(data["rows"] or 0, data["columns"] or 0, *shape) < MIN_SIDE:
            result.outcome = "tiny_usable"
        else:
            result.outcome = "usable"


def plan(
    seeds: dict[str, bytes],
    count: int,
    master_seed: int,
    mutations: Iterable[str] | None = None,
    heavy_weight: float = 1.0,
) -> Iterator[Task]:
    """``count`` tasks: mutations in turn (each one its fair share), a seed it applies to at
    random, an rng seed drawn from ``master_seed``. With ``heavy_weight`` below 1 the
    mutations are drawn at random instead, the costly ones (``mutate.HEAVY``) that much
    less often than the others."""
    import random

    from fuzzing.mutate import HEAVY, MUTATIONS, applies

    rng = random.Random(master_seed)
    names = sorted(mutations if mutations is not None else MUTATIONS)
    fits = {
        name: [s for s in sorted(seeds) if applies(seeds[s], MUTATIONS[name][1])] for name in names
    }
    names = [n for n in names if fits[n]]
    weights = [heavy_weight if n in HEAVY else 1.0 for n in names]
    for i in range(count):
        name = names[i % len(names)] if heavy_weight == 1.0 else rng.choices(names, weights)[0]
        yield Task(rng.choice(fits[name]), name, rng.randrange(1 << 31))
