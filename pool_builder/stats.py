"""Stage ``stats``: category size statistics and image counts of a training annotation file.

One JSON file (``xpaste_mm.datasets.category_stats``) holds the size prior of the paste transform and
the image counts of the federated loss. The annotation file is an input (relative to the current
directory); ``out`` is an output (relative to the work dir).
"""
from __future__ import annotations

from pathlib import Path

from xpaste_mm.datasets.category_stats import compute_category_stats, save_category_stats
from xpaste_mm.utils.io import remove_temp_files

from .errors import ConfigError
from .options import StatsOptions
from .stage import Stage, register_stage


@register_stage
class StatsStage(Stage):
    """Stage ``stats``: write ``options.out`` from ``options.ann_file``.

    Args:
        options (StatsOptions): annotation file and output file.
        Others: see :class:`~pool_builder.stage.Stage`.
    """

    name = 'stats'
    options_cls = StatsOptions

    def execute(self) -> Path:
        if not self.options.ann_file:
            raise ConfigError('stats: "ann_file" (training annotation JSON) is required')
        out = self.work.resolve(str(Path(self.options.out).expanduser()))
        remove_temp_files(out.parent, out.name)
        return save_category_stats(compute_category_stats(Path(self.options.ann_file).expanduser()), out)
