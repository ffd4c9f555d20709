"""Decode work for the isolation tests, importable by a decode process (tests/ is on the
path a forkserver child inherits)."""

from __future__ import annotations

import math
import resource
from pathlib import Path

from mammotriage.dicom import read_image


def decode_under_cpu_limit(path: Path) -> str:
    """Decode ``path`` at full resolution with one more second of CPU time allowed to this
    process: a long decode is killed by the kernel (SIGXCPU, then SIGKILL), as a runaway
    codec dies.
    Returns "decoded" when the decode fits in the second."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    limit = math.ceil(used.ru_utime + used.ru_stime) + 1  # at least one second left
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY and hard < limit:
        limit = hard  # lowered by an earlier call in this process: it cannot be raised again
    # Past the soft limit the kernel sends SIGXCPU, past the hard one SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))
    for _ in range(20):  # a full-size JPEG 2000 decode, again, until the limit strikes
        image = read_image(path)
        if image.pixels is None:
            return f"unusable: {image.reason}"
        if image.pixels.size < 1_000_000:  # a small view: one decode is the test
            return "decoded"
    return "decoded"
