"""``PackXPasteInputs``: mmdet's ``PackDetInputs`` plus the per-instance "pasted" flag."""
from __future__ import annotations

import numpy as np
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS

from .paste_stats import PASTE_STATS_KEY


@TRANSFORMS.register_module()
class PackXPasteInputs(PackDetInputs):
    """Pack like ``PackDetInputs`` and put ``results['gt_is_pasted']`` into
    ``data_sample.gt_instances.is_pasted`` (bool tensor; ``ignored_instances.is_pasted`` for
    instances flagged in ``gt_ignore_flags``). Missing flags mean "nothing pasted" (all ``False``).
    ``results['paste_stats']`` (written by ``XPasteCopyPaste``) goes into the data sample's metainfo.

    Raises ``ValueError`` when the flags no longer match the boxes, i.e. a transform between
    ``XPasteCopyPaste`` and this one added or removed instances without updating ``gt_is_pasted``
    (mmdet's ``CopyPaste``, ``Mosaic``, ``MixUp`` and ``FilterAnnotations`` do not know the key).

    Required keys: those of ``PackDetInputs`` (``img``, optional ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_masks``, ``gt_ignore_flags`` and the ``meta_keys``); optional ``gt_is_pasted``.

    Added keys: ``inputs`` and ``data_samples`` (``DetDataSample`` with ``gt_instances.is_pasted``), as
    ``PackDetInputs`` returns them.

    Args:
        meta_keys (tuple[str]): image meta information kept in the data sample (``PackDetInputs``'s
            default: ``img_id``, ``img_path``, ``ori_shape``, ``img_shape``, ``scale_factor``,
            ``flip``, ``flip_direction``).
    """

    mapping_table = {**PackDetInputs.mapping_table, 'gt_is_pasted': 'is_pasted'}

    def transform(self, results: dict) -> dict:
        if 'gt_bboxes' in results:
            count = len(results['gt_bboxes'])
            flags = results.get('gt_is_pasted')
            if flags is None:
                results['gt_is_pasted'] = np.zeros(count, dtype=bool)
            elif len(flags) != count:
                raise ValueError(
                    f'gt_is_pasted has {len(flags)} flags but there are {count} gt_bboxes: a transform after '
                    'XPasteCopyPaste changed the instances without updating gt_is_pasted; put it before '
                    'XPasteCopyPaste or use CachedCopyPaste for classic copy-paste')
            else:
                results['gt_is_pasted'] = np.asarray(flags, dtype=bool)
        packed = super().transform(results)
        if PASTE_STATS_KEY in results:  # counts for PasteStatsHook, whatever meta_keys says
            packed['data_samples'].set_metainfo({PASTE_STATS_KEY: results[PASTE_STATS_KEY]})
        return packed
