"""Decoding ahead of inference: model inputs from DICOM files, in a pool that works ahead.

:func:`prepare_image` turns one selected image into the model's input tensor and its
:class:`~mammotriage.preprocess.Transform` (:class:`Prepared`), or into the reason it could
not (:class:`Unusable`); it never raises for a bad file. Only the tensor survives: decoded
pixels go out of scope on return, so memory holds model inputs, not mammograms.

:class:`DecodePool` runs such work in threads (default) or processes, in order and a bounded
number of items ahead of the consumer, so that decoding the next batch overlaps inference
on this one. Threads are the default because ONNX Runtime, the codecs, numpy and Pillow all
release the GIL in their C loops: one decode thread already overlaps decoding with
inference, with no process start and no tensor pickling. Part of every decode still holds
the GIL, so on a worker with free cores a process pool (``executor="process"``) may decode
faster; measure there (``mammotriage bench``; figures and how they were taken in
``docs/benchmarks.md``). Processes also isolate a codec that crashes on a hostile file: the
file is marked unusable and the pool restarts. With processes a per-item time budget
(``timeout``) also stops a runaway decode: the pool's processes are killed, the pool
restarts, and an item that overruns the budget again on its own, in a started process of
its own, becomes ``timed_out(item)``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import (
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from mammotriage.dicom import Image, read_image
from mammotriage.dicom.decode import is_codec_failure, one_line
from mammotriage.errors import DicomReadError
from mammotriage.preprocess import PreprocessParams, Transform, preprocess_image

log = logging.getLogger(__name__)

Executors = Literal["thread", "process"]
EXECUTORS: tuple[str, ...] = ("thread", "process")
#: The reason recorded for a file whose decoding killed a worker process twice.
CRASHED = "the decoder crashed on this file (the worker process died)"


def timed_out_reason(seconds: float) -> str:
    """The reason recorded for a file whose decoding ran past the time budget, alone."""
    return f"decoding ran past its time budget of {seconds:g} s (the decode process was stopped)"

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Prepared:
    """One selected image made ready for the model: the preprocessed tensor (never the
    decoded pixels) and the transform that maps the model input back to the file's pixels.

    ``kept`` is what a caller's ``keep`` function made of the decoded image in the same pass
    (the worker's thumbnail), so that nothing needs the file's pixels a second time;
    ``decoder`` names the codec that read the pixels.
    """

    tensor: np.ndarray
    transform: Transform
    kept: object = None
    decoder: str | None = None


@dataclass(frozen=True)
class Unusable:
    """Why a selected image could not be made ready for the model."""

    reason: str


#: ``keep(decoded image)``: what to make of the decoded pixels besides the model input, in
#: the same pass (a module-level function: a process pool pickles it by name).
Keep = Callable[[Image], object]


def prepare_image(
    image: Image, params: PreprocessParams, keep: Keep | None = None
) -> Prepared | Unusable:
    """Decode (when the image carries no pixels) and preprocess one image.

    Runs in the decode pool, so it is a module-level function of picklable arguments. The
    file is decoded at reduced resolution for the model input; ``keep``, when given, makes
    what else needs these pixels (the worker's thumbnail) from the same decode. The decoded
    pixels go out of scope on return. A failure of ``keep`` costs what it makes, not the
    model input: ``kept`` is then None and the failure is logged.
    """
    source = image
    try:
        if image.pixels is None:
            if image.path is None:
                return Unusable("no pixels and no file to read them from")
            source = read_image(image.path, target_shape=(params.input_height, params.input_width))
            if not source.usable:
                return Unusable(source.reason or "unusable")
            if source.sop_instance_uid != image.sop_instance_uid:
                return Unusable("file changed since its header was read")
        tensor, transform = preprocess_image(source, params)
    except DicomReadError as exc:
        return Unusable(exc.reason)
    except BaseException as exc:  # a hostile file must never stop the batch
        if not is_codec_failure(exc):  # Rust codec panics are BaseExceptions; interrupts are not
            raise
        return Unusable(f"cannot preprocess: {type(exc).__name__}: {one_line(exc)}")
    kept = None
    if keep is not None:
        try:
            kept = keep(source)
        except Exception as exc:
            log.warning(
                "the decoded image was scored, but %s failed on it: %s",
                getattr(keep, "__name__", "keep"),
                one_line(exc),
                extra={"event": "keep-failed"},
            )
    return Prepared(tensor, transform, kept, getattr(source, "decoder", None))


def read_header(path: Path) -> Image:
    """The file's header only (no pixels): what grouping into exams needs."""
    return read_image(path, load_pixels=False)


def crashed_header(path: Path) -> Image:
    """The unusable image of a file whose header reading killed a worker process."""
    return Image(path=path, usable=False, reason=CRASHED)


def timed_out_header(seconds: float, path: Path) -> Image:
    """The unusable image of a file whose header reading ran past the time budget."""
    return Image(path=path, usable=False, reason=timed_out_reason(seconds))


def _ready() -> None:
    """Submitted first to a fresh one-process pool: returns once its process has started,
    so that the time budget of the next item measures that item, not the process start."""


def _follow(parent: int) -> None:
    """Initializer of every decode process: end it once ``parent`` (the process that started
    the pool) is gone. A pool's processes wait on its queue, whose ends they hold themselves,
    so they never see its owner die: a worker killed with SIGKILL (or by the OOM killer)
    would leave its decode processes and their forkserver running for ever."""

    def watch() -> None:
        while not _gone(parent):
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="mammotriage-follow-parent", daemon=True).start()


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: a zombie (dead, not yet reaped) counts as ended."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(") ")[2][:1] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # the pid now belongs to another user's process
            return True
        return False


def _process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers, mp_context=process_context(), initializer=_follow, initargs=(os.getpid(),)
    )


def _kill(pool: Executor) -> None:
    """Stop a process pool now, its running work included (a hung decode never returns)."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


class DecodePool:
    """Runs decode work in order, a bounded number of items ahead of the consumer.

    ``workers`` 0 runs everything in the calling thread, when asked (no overlap). The pool
    starts on first use and :meth:`close` stops it; a later call starts a new one.
    """

    def __init__(
        self, workers: int, executor: Executors = "thread", timeout: float | None = None
    ) -> None:
        if timeout is not None and (executor != "process" or workers < 1 or timeout <= 0):
            raise ValueError(
                "a decode time budget needs decode processes (executor 'process', workers >= 1)"
                f" and a positive number of seconds, got {timeout!r}"
            )
        self.workers = workers
        self.executor = executor
        #: Seconds one item may take (process pools only); None: no budget.
        self.timeout = timeout
        self._pool: Executor | None = None
        # Several threads may map through one pool (the worker decodes two studies at
        # once): starting, replacing and stopping the pool happen under this lock.
        self._lock = threading.RLock()

    def close(self) -> None:
        """Stop the pool (a later call starts a new one)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _executor(self) -> Executor | None:
        if self.workers == 0:
            return None
        with self._lock:
            if self._pool is None:
                if self.executor == "process":
                    self._pool = _process_pool(self.workers)
                else:
                    self._pool = ThreadPoolExecutor(
                        self.workers, thread_name_prefix="mammotriage-decode"
                    )
            return self._pool

    def _retire(self, pool: Executor) -> bool:
        """Forget ``pool`` if it is still the current one (another thread may have
        replaced it already); True when this call retired it."""
        with self._lock:
            if self._pool is not pool:
                return False
            self._pool = None
            return True

    def _submit(self, fn: Callable[[_T], _R], item: _T) -> tuple[Future[_R], Executor]:
        """Submit to the current pool; one another thread just broke, stopped or replaced
        is given up for a fresh one."""
        while True:
            executor = self._executor()
            assert executor is not None
            try:
                return executor.submit(fn, item), executor
            except (BrokenExecutor, RuntimeError):  # broken, or shut down by a restart
                if self._retire(executor):
                    executor.shutdown(wait=False, cancel_futures=True)

    def ordered_map(
        self,
        fn: Callable[[_T], _R],
        items: Sequence[_T],
        crashed: Callable[[_T], _R],
        *,
        depth: int,
        timed_out: Callable[[_T], _R] | None = None,
    ) -> Generator[tuple[_T, _R], None, None]:
        """``(item, fn(item))`` in order, with up to ``depth`` items in the pool at a time.

        A worker process that dies (a codec crashing on a hostile file) breaks the whole
        pool: the pool is restarted and each item that was in flight is run again on its
        own, so that only the item that crashes a worker twice becomes ``crashed(item)``.
        An item not done within the time budget (counted from when the consumer waits for
        it) gets its pool killed and the same treatment: only an item that overruns the
        budget again on its own becomes ``timed_out(item)`` (default ``crashed``).
        """
        pool = self._executor()
        if pool is None:
            for item in items:
                yield item, fn(item)
            return
        window: deque[tuple[_T, Future[_R], Executor]] = deque()
        pending = iter(items)

        def submit() -> None:
            for item in pending:  # at most one
                future, executor = self._submit(fn, item)
                window.append((item, future, executor))
                return

        try:
            for _ in range(depth):
                submit()
            while window:
                item, future, executor = window.popleft()
                try:
                    result = future.result(timeout=self.timeout)
                except (BrokenExecutor, CancelledError):  # cancelled: its pool was killed
                    if self._retire(executor):
                        log.warning("a decode worker died; restarting the decode pool")
                        executor.shutdown(wait=True, cancel_futures=True)
                    result = self._alone(fn, item, crashed, timed_out)
                except TimeoutError:
                    if self._retire(executor):
                        log.warning(
                            "a decode ran past its time budget of %g s; restarting the decode"
                            " pool",
                            self.timeout,
                        )
                        _kill(executor)
                    result = self._alone(fn, item, crashed, timed_out)
                submit()
                yield item, result
        finally:
            for _, future, _ in window:
                future.cancel()

    def _alone(
        self,
        fn: Callable[[_T], _R],
        item: _T,
        crashed: Callable[[_T], _R],
        timed_out: Callable[[_T], _R] | None = None,
    ) -> _R:
        """Run ``item`` in a one-worker pool of its own: ``crashed(item)`` if it kills that
        worker too, ``timed_out(item)`` if it overruns the budget there, so a crash or a hang
        is pinned on the file that caused it, not its neighbours."""
        if self.executor != "process":
            return fn(item)
        solo = _process_pool(1)
        try:
            solo.submit(_ready).result()  # the budget runs from a started process
            return solo.submit(fn, item).result(timeout=self.timeout)
        except BrokenExecutor:
            return crashed(item)
        except TimeoutError:
            _kill(solo)
            return (timed_out or crashed)(item)
        finally:
            solo.shutdown(wait=True, cancel_futures=True)


def process_context() -> multiprocessing.context.BaseContext:
    """forkserver (spawn off Linux), never fork: this process already runs ONNX Runtime
    threads, and a forked copy of a threaded process may inherit a held lock."""
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)
