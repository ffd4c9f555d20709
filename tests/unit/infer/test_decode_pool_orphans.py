"""A worker killed with SIGKILL leaves no decode process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

CHILD = textwrap.dedent(
    """
    import os, signal
    from multiprocessing import forkserver
    from mammotriage.infer.prepare import DecodePool

    pool = DecodePool(2, "process")
    list(pool.ordered_map(abs, [-1, -2, -3], crashed=lambda item: None, depth=2))
    pids = list(pool._pool._processes) + [forkserver._forkserver._forkserver_pid]
    print(" ".join(map(str, pids)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_decode_processes_end_when_the_worker_is_killed():
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60
    )  # the orphans would hold the output pipes open: a timeout here is the failure
    assert result.returncode == -9, result.stderr
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 3 and all(p != os.getpid() for p in pids)
    deadline = time.monotonic() + 15
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "decode processes outlived their worker"
