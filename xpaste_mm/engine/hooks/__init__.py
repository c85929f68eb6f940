"""Hooks registered in ``mmdet.registry.HOOKS``."""
from .paste_stats_hook import PasteStatsHook

__all__ = ['PasteStatsHook']
