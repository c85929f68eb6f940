"""Settings of a check run and what a phase gets to run with."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .fixtures import FULL_DATA, SMOKE_DATA, CheckData, prepare_data
from .measure import Budget
from .report import Row, device_name


class CheckFailed(RuntimeError):
    """A phase ran but a check failed (e.g. a non-finite loss, CUDA results unequal to the CPU's)."""


@dataclass
class Settings:
    """Sizes and options of a run (JSON-serialisable: phase processes receive them as a file).

    Zero batch sizes mean the config's value; ``train_workers=-1`` means the config's worker count,
    at most the number of CPU cores.
    """

    device: str = 'cuda'
    smoke: bool = False
    work_dir: str = 'work_dirs/gpu_check'
    seed: int = 0
    train_iters: int = 20
    warmup_iters: int = 5
    r50_batch: int = 0
    swinl_batch: int = 0
    train_workers: int = -1
    loader_workers: list[int] = field(default_factory=lambda: [0, 4, 8])
    loader_batches: int = 40
    sd_steps: int = 50
    sd_batch: int = 4
    sd_batches: int = 2
    segment_batch: int = 8
    segment_batches: int = 4
    score_batch: int = 32
    score_batches: int = 4
    infer_images: int = 50
    checkpoint: str | None = None

    @classmethod
    def smoke_defaults(cls, **overrides) -> Settings:
        """Tiny sizes for a CPU run in a test (the whole smoke check takes well under a minute)."""
        values = dict(device='cpu', smoke=True, train_iters=2, warmup_iters=1, r50_batch=2, train_workers=0,
                      loader_workers=[0, 2], loader_batches=2, sd_steps=2, sd_batch=2, sd_batches=1,
                      segment_batch=2, segment_batches=1, score_batch=4, score_batches=1, infer_images=2)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


class PhaseContext:
    """Handed to a phase function: its settings, device, time budget and the ``emit`` of figures."""

    def __init__(self, phase: str, settings: Settings, budget_s: float, sink: Callable[[Row], None]) -> None:
        self.phase = phase
        self.settings = settings
        self.device = settings.device
        self.smoke = settings.smoke
        self.budget = Budget(budget_s)
        self._sink = sink
        self._device_name: str | None = None

    @property
    def work_dir(self) -> Path:
        return Path(self.settings.work_dir)

    def emit(self, figure: str, value: float | int | str, unit: str, note: str = '') -> None:
        """Record one measured figure (a phase process writes it to disk at once)."""
        if self._device_name is None:
            self._device_name = device_name(self.device)
        if isinstance(value, float):
            value = round(value, 6)
        self._sink(Row(self.phase, figure, value, unit, self._device_name, note))

    def data(self) -> CheckData:
        """The synthetic LVIS data, pool and statistics (generated once per work dir)."""
        spec = SMOKE_DATA if self.smoke else FULL_DATA
        folder = self.work_dir / ('data-smoke' if self.smoke else 'data')
        return prepare_data(folder, spec, self.settings.seed)

    def models_dir(self) -> Path:
        """Where model folders built by the checks are kept between runs."""
        path = self.work_dir / 'models'
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cpu_workers(self, wanted: int) -> int:
        return min(wanted, os.cpu_count() or 1)
