"""Timing and peak memory of a measured section, on CUDA or CPU."""
from __future__ import annotations

import resource
import sys
import time

import torch

MIB = 2**20


def synchronize(device: str) -> None:
    """Wait for queued CUDA work, so wall-clock time covers it (no-op on CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(torch.device(device))


class PeakMemory:
    """Peak memory of a section in MiB: CUDA ``max_memory_allocated`` (and reserved) since the section
    started, or on CPU the process's peak resident set size (``ru_maxrss``, since the process started:
    each phase runs in its own process unless ``--in-process``)."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.allocated_mib = 0.0
        self.reserved_mib = 0.0

    @property
    def kind(self) -> str:
        return 'CUDA max allocated' if self.device.type == 'cuda' else 'process peak RSS'

    def __enter__(self) -> PeakMemory:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.allocated_mib = torch.cuda.max_memory_allocated(self.device) / MIB
            self.reserved_mib = torch.cuda.max_memory_reserved(self.device) / MIB
        else:
            scale = 1 if sys.platform == 'darwin' else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB
            self.allocated_mib = self.reserved_mib = peak


class Budget:
    """A phase's cooperative time budget: loops stop early (and report what they measured) once
    ``seconds`` have passed since the budget was created."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def share(self, fraction: float) -> Budget:
        """A sub-budget of ``fraction`` of the time left."""
        return Budget(max(self.left(), 0.0) * fraction)

    def spent(self) -> bool:
        return self.left() <= 0
