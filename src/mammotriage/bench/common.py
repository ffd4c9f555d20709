"""What the benchmark's parent and its child processes share: the error, the parity
tolerance, the peak-memory reading and the children's entry point.

Light on purpose: the children import it, and the engine's child must not grow by it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mammotriage.errors import MammotriageError

PARITY_TOLERANCE = 1e-4
Say = Callable[[str], None]
#: A child's work: the parent's JSON payload in, a JSON-able result out.
Role = Callable[[dict[str, Any]], dict[str, Any]]


class BenchmarkError(MammotriageError):
    """A benchmark run failed, or its baseline does not reproduce the model."""


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB; the baseline's children use it too."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not Linux: ru_maxrss, in KB on most systems

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_role(roles: Mapping[str, Role], argv: Sequence[str]) -> None:
    """A child's ``main``: ``argv`` is ``ROLE PAYLOAD``; print the role's result as one JSON
    line (the parent reads the last line of stdout)."""
    role, payload = argv[0], json.loads(argv[1])
    print(json.dumps(roles[role](payload)))
