#!/usr/bin/env bash
# `make demo`: the main job on embedded defaults. Until the worker exists this writes a
# synthetic screening batch (phantoms, not patients) and shows what `mammotriage inspect`
# reads in it.
set -euo pipefail
out=${1:-demo-out}
bin=.venv/bin/mammotriage
rm -rf "$out"
echo "== writing a synthetic screening batch (full-size phantoms in a vendor mix) to $out/exams"
"$bin" synth "$out/exams" --exams 6 --seed 7
echo
echo "== what mammotriage reads in it"
COLUMNS=${COLUMNS:-160} "$bin" inspect "$out/exams"
"$bin" inspect "$out/exams" --json > "$out/inspect.jsonl"
echo
echo "machine-readable: $out/inspect.jsonl; ground truth: $out/exams/truth.csv"
