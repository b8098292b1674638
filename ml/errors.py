from __future__ import annotations


class MLError(Exception):
    """Base of the errors `ml` raises on purpose."""


class InvalidImageError(MLError, ValueError):
    """The bytes are not an image this package can classify; the message says why."""


class ModelNotFoundError(MLError):
    """No model artefact where one was expected (or no active model in the registry)."""


class NotBrainMRIError(MLError):
    """The image decodes, but the model's guard says it is no brain MRI slice; the message says why.

    Not an `InvalidImageError`: the file is fine, the question is outside what the model answers.
    """
