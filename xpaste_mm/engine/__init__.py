"""Training/testing entry points and hooks."""
from . import hooks  # noqa: F401  (registration)
