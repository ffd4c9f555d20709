"""``python -m mammotriage``: the same as the ``mammotriage`` command."""

from mammotriage.cli import app

app()
