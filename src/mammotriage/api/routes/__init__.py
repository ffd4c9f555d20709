"""Thin route modules: each parses the request, calls :mod:`mammotriage.api.service` or the
store, and shapes the answer with :mod:`mammotriage.api.schemas`."""
