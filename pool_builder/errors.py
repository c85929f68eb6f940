"""Errors of the pool builder. Each message names the file or field at fault and what was expected."""
from __future__ import annotations


class PoolBuilderError(Exception):
    """Base class: a user-facing problem with an input, a config or the work directory."""


class VocabularyError(PoolBuilderError, ValueError):
    """A category file or prompt file is malformed."""


class ConfigError(PoolBuilderError, ValueError):
    """A run config or command-line option is invalid."""


class ImageReadError(PoolBuilderError, OSError):
    """An image or mask file is missing or cannot be decoded."""


class UnknownSegmenterError(PoolBuilderError, ValueError):
    """A segmenter name is not registered."""


class WorkDirError(PoolBuilderError, ValueError):
    """The work directory is inconsistent with the requested run (e.g. another vocabulary)."""
