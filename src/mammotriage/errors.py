"""One exception tree for everything a user can cause.

Only :mod:`mammotriage.cli` and :mod:`mammotriage.api` turn these into messages or responses.
"""


class MammotriageError(Exception):
    """Root of every error mammotriage raises on purpose."""


class DicomReadError(MammotriageError):
    """A file could not be read as a usable mammogram.

    The reader catches this itself and returns an ``Image`` with ``usable=False``; it is
    raised only by the lower layers (decoding, VOI) so that the reason travels with it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingCodecError(DicomReadError):
    """The transfer syntax needs a codec package that is not installed."""


class ConfigError(MammotriageError):
    """A configuration file or value is wrong."""


class ExportError(MammotriageError):
    """An exported model does not reproduce the network it was exported from.

    Raised by :func:`mammotriage.model.export.export_onnx` after it has deleted the file, so
    that no model whose ONNX Runtime outputs differ from PyTorch's can reach ``models/``.
    """


class StoreError(MammotriageError):
    """The worklist database failed or refused a write (locked, unreachable, a broken row)."""


class SourceError(MammotriageError):
    """A PACS or folder source refused a request for good (a study that is gone, a bad reply).

    The worker records the reason on the job and does not retry it.
    """


class SourceUnavailableError(SourceError):
    """A source is down, slow or out of space for now (connection refused, timeout, HTTP 5xx,
    a full disk): the worker keeps the job queued and retries it with backoff."""


class ReadingError(MammotriageError):
    """A reading action the worklist refuses; the API turns each subclass into its status."""


class NotFoundError(ReadingError):
    """No such exam (or user) — or none the caller may know of."""


class ConflictError(ReadingError):
    """The exam's state does not allow it: claimed by another reader, already decided, read."""


class ForbiddenError(ReadingError):
    """The caller may not do this to this exam (e.g. open another reader's claimed exam)."""
