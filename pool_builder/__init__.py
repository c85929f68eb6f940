"""pool_builder: build an X-Paste instance pool (generate -> segment -> score -> filter -> index)."""
