"""The go-live evaluation: a backfill's scores joined with the screening programme's
outcomes, the figures a programme decides its triage thresholds from (with bootstrap
intervals), site-calibrated sidecars, and one self-contained HTML report.

Reads the backfill's Parquet files with pyarrow and pandas, never Ray: an evaluation runs
on a laptop from a copied output folder. ``mammotriage evaluate`` is the command.
"""

from mammotriage.evaluation.evaluate import Evaluation, evaluate
from mammotriage.evaluation.outcomes import Outcomes, read_outcomes

__all__ = ["Evaluation", "Outcomes", "evaluate", "read_outcomes"]
