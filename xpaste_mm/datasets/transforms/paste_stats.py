"""What ``XPasteCopyPaste`` did to one image, as a small record that travels with the data sample.

The transform stores the record in ``results['paste_stats']``; ``PackXPasteInputs`` copies it into the
data sample's metainfo, so it reaches the main process with the batch from any dataloader worker
(persistent or not) and ``PasteStatsHook`` sums it over iterations and ranks. Every field is an integer
count for one image:

- ``images``: 1; ``no_paste``: 1 when no pool instance is visible in the output image;
- ``pasted``: pool instances in the output (after occlusion by later pastes);
- ``pasted_r``/``pasted_c``/``pasted_f``: the same by LVIS frequency group of their category and
  ``grouped``: 1 when the categories' groups are known (else the three are 0);
- ``occluded``: instances (original or pasted) dropped because pastes covered them;
- ``unreadable``: pool crops drawn for the image but skipped as missing/undecodable.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ...categories import FREQUENCY_GROUPS

PASTE_STATS_KEY = 'paste_stats'
FIELDS = ('images', 'no_paste', 'pasted', 'pasted_r', 'pasted_c', 'pasted_f', 'grouped', 'occluded',
          'unreadable')


def label_frequency_groups(category_ids: Sequence[int],
                           frequency: Mapping[int, str | None]) -> np.ndarray | None:
    """Frequency group index (0 ``r``, 1 ``c``, 2 ``f``, -1 unknown) of each dataset label (label ``i``
    = ``sorted(category_ids)[i]``) from ``{category id: group}``; ``None`` when no label has a group."""
    groups = np.array([FREQUENCY_GROUPS.index(frequency[c]) if frequency.get(c) in FREQUENCY_GROUPS else -1
                       for c in sorted(int(c) for c in category_ids)], dtype=np.int64)
    return groups if (groups >= 0).any() else None


def paste_record(pasted_labels: Sequence[int] | np.ndarray, label_groups: np.ndarray | None,
                 occluded: int = 0, unreadable: int = 0) -> dict[str, int]:
    """The record of one image given the labels of its visible pasted instances."""
    labels = np.asarray(pasted_labels, dtype=np.int64).reshape(-1)
    record = dict.fromkeys(FIELDS, 0)
    record.update(images=1, no_paste=int(len(labels) == 0), pasted=len(labels), occluded=int(occluded),
                  unreadable=int(unreadable))
    if label_groups is not None:
        counts = np.bincount(label_groups[labels] + 1, minlength=4)  # index 0 = unknown group
        record.update(pasted_r=int(counts[1]), pasted_c=int(counts[2]), pasted_f=int(counts[3]), grouped=1)
    return record


def sum_records(records: Sequence[dict]) -> np.ndarray:
    """Field-wise sum of records, in :data:`FIELDS` order (float64, ready for an all-reduce)."""
    totals = np.zeros(len(FIELDS), dtype=np.float64)
    for record in records:
        totals += [record.get(f, 0) for f in FIELDS]
    return totals
