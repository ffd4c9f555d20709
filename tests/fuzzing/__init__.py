"""Fuzzing harness for ``mammotriage.dicom.read_image`` (issue 11).

``seeds``: valid (and a few damaged) files in every transfer syntax the reader supports.
``mutate``: seeded, reproducible mutations; a mutant is (seed file, mutation name, rng seed).
``runner``: reads each mutant in a forked child with a time and an address-space limit and
classifies what happened.

Used by ``tests/unit/dicom/test_fuzz_reader.py`` (a fixed-seed run in the suite) and by
``scripts/fuzz_reader.py`` (long runs).
"""
