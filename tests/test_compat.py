"""Compatibility layer: lvis-api evaluation on numpy 2 and checkpoints under weights_only loading."""
import copy
import io

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

import xpaste_mm  # noqa: F401  (applies the fixes)


def _gt_predictions(ann_file, perturb: bool):
    """Data samples whose predictions are the ground truth (optionally shifted / some dropped)."""
    from lvis import LVIS
    api = LVIS(str(ann_file))
    cat_ids = sorted(api.get_cat_ids())
    samples = []
    for img_id in api.get_img_ids():
        info = api.load_imgs([img_id])[0]
        h, w = info['height'], info['width']
        anns = api.load_anns(api.get_ann_ids(img_ids=[img_id]))
        if perturb:
            anns = anns[1:]
        boxes, masks = [], []
        for ann in anns:
            x, y, bw, bh = ann['bbox']
            shift = 0.25 * bw if perturb else 0.0
            boxes.append([x + shift, y, x + bw + shift, y + bh])
            rle = mask_utils.merge(mask_utils.frPyObjects(ann['segmentation'], h, w))
            masks.append(mask_utils.decode(rle).astype(bool))
        samples.append(dict(
            img_id=img_id, ori_shape=(h, w),
            pred_instances=dict(
                bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                scores=torch.ones(len(anns)),
                labels=torch.tensor([cat_ids.index(a['category_id']) for a in anns], dtype=torch.long),
                masks=torch.from_numpy(np.stack(masks) if masks else np.zeros((0, h, w), bool)))))
    return samples


def _evaluate(ann_file, class_names, samples):
    from mmdet.evaluation import LVISMetric
    metric = LVISMetric(ann_file=str(ann_file), metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=class_names)
    metric.process({}, copy.deepcopy(samples))
    return metric.evaluate(size=len(samples))


def test_lvis_metric_runs_on_numpy2_and_scores_ground_truth_perfectly(synthetic_lvis):
    assert not hasattr(np, 'float')  # numpy >= 1.24: the alias lvis-api uses is gone
    perfect = _evaluate(synthetic_lvis.val_ann, synthetic_lvis.class_names,
                        _gt_predictions(synthetic_lvis.val_ann, perturb=False))
    assert perfect['lvis/bbox_AP'] == pytest.approx(1.0)
    assert perfect['lvis/segm_AP'] == pytest.approx(1.0)
    worse = _evaluate(synthetic_lvis.val_ann, synthetic_lvis.class_names,
                      _gt_predictions(synthetic_lvis.val_ann, perturb=True))
    assert worse['lvis/bbox_AP'] < perfect['lvis/bbox_AP']
    assert worse['lvis/segm_AP'] < perfect['lvis/segm_AP']


def test_mmengine_checkpoint_meta_loads_with_weights_only():
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_compat_hub')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('iter', np.int64(7))
    buffer = io.BytesIO()
    torch.save(dict(meta=dict(message_hub=hub.state_dict()), state_dict={'w': torch.ones(2)}), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded['meta']['message_hub']['log_scalars']['train/loss'].current() == 0.5
    assert loaded['meta']['message_hub']['runtime_info']['iter'] == 7


def test_weights_only_still_refuses_arbitrary_callables():
    buffer = io.BytesIO()
    torch.save({'f': print}, buffer)
    buffer.seek(0)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(buffer, weights_only=True)
