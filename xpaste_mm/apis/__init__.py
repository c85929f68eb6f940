"""High-level entry points behind ``tools/``: training/testing launch (mmdet-compatible flags) and the
image demo. Modules here import mmengine/mmdet when called, not at package import."""
