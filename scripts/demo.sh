#!/usr/bin/env bash
# `make demo`: the main job on embedded defaults, nothing external to start. Writes a
# synthetic screening batch (phantoms, not patients) into a folder, runs the batch worker on
# it once (folder source, SQLite store, the shipped demonstration model: trained on synthetic
# phantoms only, not for clinical use), prints the reading queues it made and where the DICOM
# SRs and presentation states were written.
set -euo pipefail
out=${1:-demo-out}
bin=.venv/bin/mammotriage
export COLUMNS=${COLUMNS:-160}
rm -rf "$out"
mkdir -p "$out"
echo "== 1. a synthetic screening batch (full-size phantoms, six vendor profiles) arrives in $out/incoming"
# Study dates in the last two weeks, so that the monitoring at the end counts them this week.
"$bin" synth "$out/incoming" --exams 8 --seed 7 --prevalence 0.25 \
  --from "$(date -u -d '13 days ago' +%F)" --to "$(date -u +%F)"
mv "$out/incoming/truth.csv" "$out/truth.csv"
echo
echo "== 2. what mammotriage reads in it"
"$bin" inspect "$out/incoming"
echo
cat > "$out/worker.yaml" <<YAML
# The demo's worker: folder source, SQLite store (see configs/worker.yaml for every option).
# Relative paths are relative to this file's folder; model and policy are the packaged
# defaults (the demonstration model, the Capital Region of Denmark's policy).
database: worklist.sqlite
work_dir: work
thumbnails_dir: thumbnails
poll_seconds: 0.5
source:
  kind: folder
  path: incoming
  quiet_seconds: 1
  reports: reports
# What is written for each exam: the DICOM SR (IHE AI Results) and, for exams with
# findings, a presentation state drawing them (both into reports/<study>/). The burnt-in
# Secondary Capture (sc) and the HL7 result to a RIS (hl7) stay off: see README "Outputs".
outputs:
  sr: {enabled: true}
  gsps: {enabled: true}
metrics:
  textfile: metrics.prom
log_format: json
# The packaged model is trained on synthetic phantoms: the worker runs it only when told to.
allow_demonstration_model: true
YAML
echo "== 3. the batch worker: score, triage (the packaged policy: categories 1-5 single, 6-10 double, 10 priority), store, write SRs and presentation states"
"$bin" config show worker --config "$out/worker.yaml" | grep -E '^ *(model|policy|database) '
"$bin" worker --config "$out/worker.yaml" --once --show-queues 2> "$out/worker.log"
echo
echo "== 4. the radiologists' worklist: a reading service on the same store"
secret=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')
password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(9))')
cat > "$out/api.yaml" <<YAML
# The demo's reading service (see configs/api.yaml): the worker's SQLite store, a random
# session secret made for this demo.
database: worklist.sqlite
environment: production
session_secret: $secret
YAML
for reader in reader1 reader2; do
  printf '%s\n' "$password" | "$bin" users add "$reader" --role radiologist --password-stdin --config "$out/api.yaml" >/dev/null
done
printf '%s\n' "$password" | "$bin" users add admin --role admin --password-stdin --config "$out/api.yaml" >/dev/null
echo "open the page:   $bin serve --config $out/api.yaml     (then http://127.0.0.1:8000/)"
echo "demo logins:     reader1 / $password   reader2 / $password  (radiologists; double reading needs both)"
echo "                 admin / $password  (queue statistics at /admin)"
echo
echo "files: worker log (JSON lines, internal ids only) $out/worker.log; worklist $out/worklist.sqlite;"
echo "       metrics $out/metrics.prom; ground truth $out/truth.csv"
read -r sr ps < <(.venv/bin/python - "$out/reports" <<'PY'
import sys
from collections import Counter
from pathlib import Path

import pydicom

kinds = Counter(
    pydicom.dcmread(p, stop_before_pixels=True).Modality for p in Path(sys.argv[1]).rglob("*.dcm")
)
print(kinds["SR"], kinds["PR"])
PY
)
echo "       outputs under $out/reports/<study>/: $sr DICOM SRs (TID 1500, IHE AI Results; one per exam),"
echo "       $ps presentation states (GSPS: the findings as boxes on their images, for any PACS viewer)"
echo
echo "== 5. monitoring after go-live: outcomes in (here the phantoms' ground truth, as a registry"
echo "      would report it), then drift per device, readers and outcomes per band, alerts"
.venv/bin/python - "$out/truth.csv" "$out/outcomes.csv" <<'PY'
import csv
import sys

cancer: dict[str, bool] = {}
with open(sys.argv[1], newline="", encoding="utf-8") as handle:
    for row in csv.DictReader(handle):
        cancer[row["exam_id"]] = cancer.get(row["exam_id"], False) or row["cancer"] in ("1", "True")
with open(sys.argv[2], "w", newline="", encoding="utf-8") as handle:
    out = csv.writer(handle)
    out.writerow(["exam_id", "screen_detected_cancer", "interval_cancer"])
    out.writerows([exam, int(found), 0] for exam, found in sorted(cancer.items()))
PY
"$bin" outcomes import "$out/outcomes.csv" --database "$out/worklist.sqlite"
"$bin" monitor --database "$out/worklist.sqlite"
