"""The ``mammotriage`` command: one sub-command per job, grouped by who runs it.

- :mod:`~mammotriage.cli.main` builds the Typer :data:`app` and adds the commands;
- :mod:`~mammotriage.cli.common`: console, error exit, progress bar, shared options and
  the default model;
- :mod:`~mammotriage.cli.reading` (``synth``, ``inspect``),
  :mod:`~mammotriage.cli.scoring` (``score``, ``calibrate``, ``simulate``, ``queue``),
  :mod:`~mammotriage.cli.model` (``train``, ``validate``, ``export``),
  :mod:`~mammotriage.cli.worker` (``worker``), :mod:`~mammotriage.cli.service`
  (``serve``, ``users``) and :mod:`~mammotriage.cli.bench` (``bench``).

Only the command line (and :mod:`mammotriage.api`) turns :class:`MammotriageError` into a
message for a person. Heavy modules are imported inside each command so that ``--help``
is instant and the scoring commands never pull in torch. The command modules import
:mod:`~mammotriage.cli.common` only, never the app.
"""

from mammotriage.cli.main import app

__all__ = ["app"]
