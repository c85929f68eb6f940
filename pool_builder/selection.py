"""X-Paste's instance selection rule (pure functions, no I/O).

Per image, the segmenter with the highest CLIP score is chosen (ties: the first in ``order``). Per
category, ``bar = min(min_clip, best score of the category - tolerance)``, where the best is taken
over all (image, segmenter) scores. An image is kept iff its chosen score >= bar and
``min_area <= area <= max_area`` (bounds inclusive; only the chosen segmenter's area counts).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .options import FilterRule

__all__ = ['CategorySelection', 'Choice', 'FilterRule', 'choose_segmenter', 'select_category']


@dataclass(frozen=True)
class Choice:
    """The chosen segmenter of one image and its score and area."""

    key: str
    segmenter: str
    score: float
    area: float


@dataclass(frozen=True)
class CategorySelection:
    """Outcome for one category: the bar, the kept choices, and the dropped ones with reasons
    (``low_score`` or ``area``)."""

    bar: float
    best: float
    kept: tuple[Choice, ...]
    dropped: tuple[tuple[Choice, str], ...]


def choose_segmenter(scores: Mapping[str, tuple[float, float]], order: Sequence[str]) -> Choice | None:
    """The best ``(score, area)`` among ``scores`` (segmenter -> values) by ``order``; non-finite
    scores are ignored; None if nothing is left. ``key`` of the result is empty."""
    best = None
    for name in order:
        if name not in scores:
            continue
        score, area = scores[name]
        if not math.isfinite(score):
            continue
        if best is None or score > best.score:
            best = Choice('', name, float(score), float(area))
    return best


def select_category(candidates: Mapping[str, Mapping[str, tuple[float, float]]], rule: FilterRule,
                    order: Sequence[str]) -> CategorySelection:
    """Apply the rule to one category: ``candidates[image key][segmenter] = (score, area)``."""
    choices = []
    for key in sorted(candidates):
        choice = choose_segmenter(candidates[key], order)
        if choice is not None:
            choices.append(Choice(key, choice.segmenter, choice.score, choice.area))
    if not choices:
        return CategorySelection(bar=math.nan, best=math.nan, kept=(), dropped=())
    best = max(c.score for c in choices)
    bar = min(rule.min_clip, best - rule.tolerance)
    kept, dropped = [], []
    for choice in choices:
        if choice.score < bar:
            dropped.append((choice, 'low_score'))
        elif not rule.min_area <= choice.area <= rule.max_area:
            dropped.append((choice, 'area'))
        else:
            kept.append(choice)
    return CategorySelection(bar=bar, best=best, kept=tuple(kept), dropped=tuple(dropped))
