"""A fixed-seed fuzz run of the reader (issue 11): a few hundred mutants of valid files in
every transfer syntax, each read in a forked child with a CPU-time and address-space limit.

Nothing may escape ``read_image`` (Rust panics included), crash the process, run past 10 s
of CPU, need more than 1.5 GB, give a usable image with non-finite pixels or fewer than
``MIN_SIDE`` pixels a side, or say why in more than ``REASON_CAP`` characters. A failure
lists each mutant as (seed, mutation, rng seed); rebuild one with
``fuzzing.mutate.build(seeds[seed], mutation, rng_seed).write(path)`` or rerun the long
harness: ``scripts/fuzz_reader.py``.
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

import pytest

from fuzzing import mutate
from fuzzing.runner import MIN_SIDE, REASON_CAP, Runner, Task, plan
from fuzzing.seeds import build_seeds

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork + RLIMIT_AS"),
]

MASTER_SEED = 20261201
LIGHT_MUTANTS = 360
HEAVY_PER_MUTATION = 1


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    folder = tmp_path_factory.mktemp("fuzz-seeds")
    return folder, build_seeds(folder)


def _tasks(seeds: dict[str, bytes]) -> list[Task]:
    light = sorted(set(mutate.MUTATIONS) - mutate.HEAVY)
    tasks = list(plan(seeds, LIGHT_MUTANTS, MASTER_SEED, light))
    heavy = sorted(mutate.HEAVY)
    tasks += plan(seeds, HEAVY_PER_MUTATION * len(heavy), MASTER_SEED + 1, heavy)
    return tasks


def test_seeds_cover_every_transfer_syntax_the_reader_decodes(seeds):
    _, by_name = seeds
    syntaxes = set()
    for data in by_name.values():
        lay = mutate.layout(data)
        elem = lay.find(0x00020010)
        assert elem is not None
        syntaxes.add(data[elem.value_offset : elem.value_offset + elem.length].rstrip(b"\0 "))
    expected = {
        b"1.2.840.10008.1.2",
        b"1.2.840.10008.1.2.1",
        b"1.2.840.10008.1.2.1.99",
        b"1.2.840.10008.1.2.2",
        b"1.2.840.10008.1.2.5",
        b"1.2.840.10008.1.2.4.50",
        b"1.2.840.10008.1.2.4.80",
        b"1.2.840.10008.1.2.4.81",
        b"1.2.840.10008.1.2.4.90",
        b"1.2.840.10008.1.2.4.91",
    }
    assert expected <= syntaxes


def test_same_arguments_same_mutant(seeds):
    _, by_name = seeds
    for task in _tasks(by_name)[:60]:
        one = mutate.build(by_name[task.seed], task.mutation, task.rng_seed)
        two = mutate.build(by_name[task.seed], task.mutation, task.rng_seed)
        assert one == two, task


def test_fixed_seed_fuzz_run_finds_nothing(seeds, tmp_path):
    folder, by_name = seeds
    runner = Runner(
        # Killed at 10 s of CPU (what a read costs); the wall limit only catches a read that
        # hangs without using CPU, and must leave room for a loaded 2-core machine (a 3.4 s
        # CPU read once took over 20 s of wall time in a full `make test`).
        tmp_path / "work",
        jobs=2,
        timeout_s=10.0,
        wall_timeout_s=60.0,
        reason_cap=REASON_CAP,
    )
    runner.warm(folder / f"{name}.dcm" for name in by_name)
    tasks = _tasks(by_name)
    start = time.monotonic()
    jobs = ((t, partial(mutate.build, by_name[t.seed], t.mutation, t.rng_seed)) for t in tasks)
    results = list(runner.run(jobs))
    elapsed = time.monotonic() - start
    assert len(results) == len(tasks)
    outcomes = {r.outcome for r in results}
    assert {"usable", "unusable"} <= outcomes, "the mutants are all broken or none is"
    bad = [r for r in results if r.bad]
    lines = [
        f"{r.outcome}: ({r.task.seed!r}, {r.task.mutation!r}, {r.task.rng_seed}) "
        f"{r.note[:60]} -> {r.detail[:140]}"
        for r in bad
    ]
    assert not bad, (
        f"{len(bad)} of {len(results)} mutants went wrong in {elapsed:.0f} s (caps: reason "
        f"{REASON_CAP} chars, usable side >= {MIN_SIDE}):\n" + "\n".join(lines)
    )
