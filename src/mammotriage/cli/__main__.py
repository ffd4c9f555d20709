"""``python -m mammotriage.cli``: the same as the ``mammotriage`` command."""

from mammotriage.cli import app

app()
