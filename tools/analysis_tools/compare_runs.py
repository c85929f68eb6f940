"""Compare a method with its baseline over several seeds: mean +- std, gain with a confidence interval.

    python tools/analysis_tools/compare_runs.py \
        --baseline work_dirs/base_s0 work_dirs/base_s1 work_dirs/base_s2 \
        --method work_dirs/xpaste_s0 work_dirs/xpaste_s1 work_dirs/xpaste_s2 \
        --out-md gain.md --out-csv gain.csv

What is read from each work dir (every ``<timestamp>/`` folder mmengine wrote into it, resumed runs
included): the validation lines of ``<timestamp>/vis_data/scalars.json`` (one JSON object per logged
step; validation lines carry the evaluator's keys such as ``lvis/bbox_AP``), and the final evaluation is
the validation line with the largest ``step`` (ties: the latest timestamp). A run whose final validation
is not at the end of its schedule (``train_cfg.max_iters``/``max_epochs`` of the dumped config) is
refused as unfinished. The settings are read from the config mmengine dumped next to those scalars
(``<timestamp>/vis_data/config.py``, the one of the run holding the final evaluation).

Every run of both groups must share the schedule (``train_cfg``, ``param_scheduler``, the optimizer,
the per-GPU batch size, EMA and other custom hooks except ``PasteStatsHook``) and the evaluation
(``val_evaluator`` without file paths, the model's ``test_cfg``, the val pipeline); otherwise the tool
prints what differs and exits with status 2, because such a "gain" mixes the method with the setting.

Per metric (AP, AP50, APr, APc, APf of bbox and segm; COCO's mAP/mAP_50 are read as AP/AP50) it reports
each group's mean +- sample std in AP points, the gain (method - baseline) with a Welch t confidence
interval (scipy's ``ttest_ind(equal_var=False)``: Welch-Satterthwaite degrees of freedom) and a
verdict: "beyond noise" when the interval excludes 0, "within noise" otherwise (at least 2 runs per
group are needed).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, stdev

from mmengine.config import Config
from scipy import stats

TASKS = ('bbox', 'segm')
METRICS = ('AP', 'AP50', 'APr', 'APc', 'APf')
ALIASES = {'AP': ('AP', 'mAP'), 'AP50': ('AP50', 'mAP_50')}  # LVIS names first, then COCO's
IGNORED_HOOKS = {'PasteStatsHook'}  # logging only


class CompareError(RuntimeError):
    """A run cannot be read or the groups cannot be compared."""


@dataclass
class Run:
    """The final evaluation of one work dir and the config of the run that made it."""

    work_dir: Path
    step: int
    metrics: dict[str, float]
    config: Config


def read_run(work_dir: str | Path) -> Run:
    """Read the final validation and its config from a work dir (see the module docstring)."""
    work_dir = Path(work_dir)
    best = None
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for number, line in enumerate(scalars.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CompareError(f'{scalars}:{number}: not a JSON line ({exc})') from exc
            metrics = {k: v for k, v in record.items() if '/' in k and isinstance(v, (int, float))}
            if metrics and 'step' in record and (best is None or record['step'] >= best[0]):
                best = (int(record['step']), metrics, scalars.parent / 'config.py')
    if best is None:
        raise CompareError(f'{work_dir}: no validation results found (expected '
                           '<timestamp>/vis_data/scalars.json lines with evaluator keys such as '
                           'lvis/bbox_AP, written by mmengine during training)')
    step, metrics, config_file = best
    if not config_file.is_file():
        raise CompareError(f'{config_file}: missing; mmengine dumps the config there (LocalVisBackend)')
    config = Config.fromfile(str(config_file), import_custom_modules=False)
    run = Run(work_dir, step, metrics, config)
    end = _schedule_end(config)
    if end is not None and step < end:
        raise CompareError(f'{work_dir}: the last validation is at step {step} but the schedule ends at '
                           f'{end}: the run is unfinished (resume it or leave it out)')
    return run


def _schedule_end(config: Config) -> int | None:
    train_cfg = config.get('train_cfg') or {}
    by_epoch = (config.get('log_processor') or {}).get('by_epoch', True)
    if 'max_iters' in train_cfg:
        return int(train_cfg['max_iters'])
    if 'max_epochs' in train_cfg and by_epoch:
        return int(train_cfg['max_epochs'])
    return None


def settings(config: Config) -> dict[str, object]:
    """The schedule and evaluation settings that must agree between compared runs."""
    cfg = config.to_dict()
    loader = cfg.get('train_dataloader') or {}
    optim = cfg.get('optim_wrapper') or {}
    hooks = [h for h in cfg.get('custom_hooks') or [] if h.get('type') not in IGNORED_HOOKS]
    evaluator = _without_paths(cfg.get('val_evaluator'))
    val_dataset = (cfg.get('val_dataloader') or {}).get('dataset') or {}
    return {
        'schedule: train_cfg': cfg.get('train_cfg'),
        'schedule: param_scheduler': cfg.get('param_scheduler'),
        'schedule: optimizer': optim.get('optimizer'),
        'schedule: clip_grad': optim.get('clip_grad'),
        'schedule: batch size per GPU': loader.get('batch_size'),
        'schedule: custom_hooks (EMA, ...)': hooks,
        'evaluation: val_evaluator': evaluator,
        'evaluation: model.test_cfg': (cfg.get('model') or {}).get('test_cfg'),
        'evaluation: val pipeline': val_dataset.get('pipeline'),
    }


def _without_paths(value):
    """``value`` with file paths reduced to their names (work dirs of other machines still match)."""
    if isinstance(value, dict):
        return {k: Path(v).name if k.endswith(('file', 'prefix')) and isinstance(v, str)
                else _without_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_paths(v) for v in value]
    return value


def check_comparable(runs: list[Run]) -> None:
    """Raise :class:`CompareError` naming every setting that differs from the first run's."""
    reference = settings(runs[0].config)
    problems = []
    for run in runs[1:]:
        for key, value in settings(run.config).items():
            if value != reference[key]:
                problems.append(f'{key} differs between {runs[0].work_dir} and {run.work_dir}:\n'
                                f'    {reference[key]!r}\n    {value!r}')
    if problems:
        raise CompareError('refusing to compare runs with different schedules or evaluation settings (a gain '
                           'would mix the method with the setting; train an equal-schedule baseline):\n'
                           + '\n'.join(problems))


def metric_value(run: Run, task: str, metric: str) -> float | None:
    """``task``/``metric`` of a run in AP points (mmdet logs 0-1), or ``None`` when its evaluator has no
    such key or reports -1 (no category of that group in the evaluation set)."""
    for key, value in run.metrics.items():
        name = key.split('/', 1)[1]
        if any(name == f'{task}_{alias}' for alias in ALIASES.get(metric, (metric,))):
            return 100.0 * float(value) if value >= 0 else None
    return None


@dataclass
class Row:
    """One metric's comparison."""

    metric: str
    baseline: list[float]
    method: list[float]
    confidence: float

    @property
    def gain(self) -> float:
        return fmean(self.method) - fmean(self.baseline)

    def interval(self) -> tuple[float, float] | None:
        """Welch t confidence interval of the gain; ``None`` with fewer than 2 runs in a group."""
        if min(len(self.baseline), len(self.method)) < 2:
            return None
        if len(set(self.baseline)) == len(set(self.method)) == 1:  # no spread: the t statistic is undefined
            return self.gain, self.gain
        test = stats.ttest_ind(self.method, self.baseline, equal_var=False)
        interval = test.confidence_interval(confidence_level=self.confidence)
        return float(interval.low), float(interval.high)

    def verdict(self) -> str:
        interval = self.interval()
        if interval is None:
            return 'needs >= 2 runs per group'
        low, high = interval
        if low > 0:
            return 'gain beyond noise'
        if high < 0:
            return 'loss beyond noise'
        return 'within noise'


def _std(values: list[float]) -> float:
    return stdev(values) if len(values) > 1 else float('nan')


def compare(baseline: list[Run], method: list[Run], confidence: float = 0.95) -> list[Row]:
    """Rows for every metric present in all runs (after :func:`check_comparable`)."""
    check_comparable(baseline + method)
    rows = []
    for task in TASKS:
        for metric in METRICS:
            values = [[metric_value(r, task, metric) for r in group] for group in (baseline, method)]
            flat = values[0] + values[1]
            if all(v is None for v in flat):
                continue
            if any(v is None for v in flat):
                missing = [str(r.work_dir) for r, v in zip(baseline + method, flat) if v is None]
                raise CompareError(f'{task} {metric} is missing in {missing} but present in other runs')
            rows.append(Row(f'{task} {metric}', values[0], values[1], confidence))
    if not rows:
        raise CompareError(f'no run reports any of {METRICS} for {TASKS}')
    return rows


def table(rows: list[Row]) -> list[dict[str, str]]:
    """Printable cells (AP points, two decimals)."""
    out = []
    for row in rows:
        interval = row.interval()
        out.append({
            'metric': row.metric,
            'baseline': _spread(row.baseline),
            'method': _spread(row.method),
            'gain': f'{row.gain:+.2f}',
            f'{row.confidence:.0%} CI': f'[{interval[0]:+.2f}, {interval[1]:+.2f}]' if interval else 'n/a',
            'verdict': row.verdict(),
        })
    return out


def _spread(values: list[float]) -> str:
    std = f' ± {_std(values):.2f}' if len(values) > 1 else ''
    return f'{fmean(values):.2f}{std} (n={len(values)})'


def markdown(cells: list[dict[str, str]]) -> str:
    header = list(cells[0])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(c[h] for h in header) + ' |' for c in cells]
    return '\n'.join(lines) + '\n'


def write_csv(rows: list[Row], path: Path) -> None:
    """One line per metric with unrounded numbers (mean, std, gain, CI bounds) and the verdict."""
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['metric', 'baseline_mean', 'baseline_std', 'baseline_n', 'method_mean', 'method_std',
                         'method_n', 'gain', 'ci_low', 'ci_high', 'confidence', 'verdict'])
        for row in rows:
            low, high = row.interval() or (float('nan'), float('nan'))
            writer.writerow([row.metric, fmean(row.baseline), _std(row.baseline), len(row.baseline),
                             fmean(row.method), _std(row.method), len(row.method), row.gain, low, high,
                             row.confidence, row.verdict()])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--baseline', nargs='+', required=True, help='work dirs of the baseline runs (seeds)')
    parser.add_argument('--method', nargs='+', required=True, help='work dirs of the method runs (seeds)')
    parser.add_argument('--confidence', type=float, default=0.95, help='confidence level of the interval')
    parser.add_argument('--out-md', type=Path, help='also write the Markdown table here')
    parser.add_argument('--out-csv', type=Path, help='write the unrounded numbers as CSV here')
    args = parser.parse_args(argv)
    if not 0 < args.confidence < 1:
        parser.error(f'--confidence must be in (0, 1), got {args.confidence}')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        baseline, method = [read_run(d) for d in args.baseline], [read_run(d) for d in args.method]
        rows = compare(baseline, method, args.confidence)
    except CompareError as exc:
        print(f'compare_runs: {exc}', file=sys.stderr)
        return 2
    text = markdown(table(rows))
    print(text, end='')
    if args.out_md:
        args.out_md.write_text(text, encoding='utf-8')
    if args.out_csv:
        write_csv(rows, args.out_csv)
    return 0


if __name__ == '__main__':
    sys.exit(main())
