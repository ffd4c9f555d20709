#!/usr/bin/env bash
# `make demo`: the main job on embedded defaults. Writes a synthetic screening batch
# (phantoms, not patients), shows what `mammotriage inspect` reads in it, scores it with the
# shipped demonstration model (trained on synthetic phantoms only: not for clinical use) and
# prints the reading queue that the Capital Region of Denmark policy makes of it.
set -euo pipefail
out=${1:-demo-out}
bin=.venv/bin/mammotriage
export COLUMNS=${COLUMNS:-160}
rm -rf "$out"
mkdir -p "$out"
echo "== 1. writing a synthetic screening batch (full-size phantoms, six vendor profiles) to $out/exams"
"$bin" synth "$out/exams" --exams 8 --seed 7 --prevalence 0.25
echo
echo "== 2. what mammotriage reads in it"
"$bin" inspect "$out/exams"
"$bin" inspect "$out/exams" --json > "$out/inspect.jsonl"
echo
echo "== 3. scores from models/mammotriage-synthetic-tiny.onnx (synthetic-only demonstration model)"
"$bin" score "$out/exams" --json > "$out/scores.jsonl"
"$bin" score "$out/exams"
echo
echo "== 4. the reading queue (configs/triage.yaml: categories 1-5 single, 6-10 double, 10 priority)"
"$bin" queue "$out/scores.jsonl"
echo
echo "files: $out/inspect.jsonl, $out/scores.jsonl; ground truth: $out/exams/truth.csv"
