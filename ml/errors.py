from __future__ import annotations


class MLError(Exception):
    """Base of the errors `ml` raises on purpose."""


class InvalidImageError(MLError, ValueError):
    """The bytes are not an image this package can classify; the message says why."""


class ModelNotFoundError(MLError):
    """No model artefact where one was expected (or no active model in the registry)."""
