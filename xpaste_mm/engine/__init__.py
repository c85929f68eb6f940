"""Training/testing entry points and hooks."""
