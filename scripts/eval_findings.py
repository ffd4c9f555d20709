#!/usr/bin/env python
"""Localisation check: on a synthetic hold-out, how often does the top finding of a cancer
image overlap the true lesion box (IoU >= 0.3)? Prints the share and per lesion type.

    .venv/bin/python scripts/eval_findings.py data/synth-holdout [--model models/...onnx]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from mammotriage import defaults
from mammotriage.infer.engine import ScoringEngine
from mammotriage.infer.localisation import top_finding_overlaps
from mammotriage.synth import read_truth


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument(
        "--model", type=Path, default=None, help="default: the packaged demonstration model"
    )
    parser.add_argument("--iou", type=float, default=0.3)
    args = parser.parse_args()
    truth = read_truth(args.data / "truth.csv")
    with ScoringEngine(args.model or defaults.model_path()) as engine:
        exams = engine.score_paths([args.data])
    hits = top_finding_overlaps(exams, truth, args.data, threshold=args.iou)
    by_type: dict[str, list[bool]] = defaultdict(list)
    for row, hit in hits:
        by_type[row.lesion_type.value if row.lesion_type else "?"].append(hit)
    share = sum(h for _, h in hits) / max(1, len(hits))
    print(
        json.dumps(
            {
                "cancer_images": len(hits),
                "iou_threshold": args.iou,
                "share_top_finding_hits": round(share, 3),
                "by_lesion_type": {
                    k: {"n": len(v), "share": round(sum(v) / len(v), 3)}
                    for k, v in sorted(by_type.items())
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
