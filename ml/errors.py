"""Errors raised by `ml` at its boundaries (stdlib only)."""

from __future__ import annotations


class MLError(Exception):
    """Base class of every error `ml` raises on purpose."""


class InvalidImageError(MLError, ValueError):
    """The bytes are not a usable image; retrying will not help (permanent)."""


class ModelNotFoundError(MLError):
    """No model artefact where one was expected (no active model, unknown version)."""
