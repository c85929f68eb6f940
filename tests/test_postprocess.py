"""Fast detection post-processing (class-wise NMS over the top candidates, masks pasted inside their
boxes) gives exactly what mmdet's ``multiclass_nms`` and ``FCNMaskHead`` pasting give."""
import pytest
import torch
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmengine.config import ConfigDict

from xpaste_mm.models.roi_heads import postprocess
from xpaste_mm.models.roi_heads.postprocess import class_wise_nms, paste_masks


def _detections(num: int, num_classes: int, seed: int):
    """Boxes clustered around num // 4 objects (so NMS suppresses a lot) and fused-like scores."""
    gen = torch.Generator().manual_seed(seed)
    objects = max(num // 4, 1)
    centres = torch.rand(objects, 2, generator=gen) * torch.tensor([320., 240.])
    sizes = torch.rand(objects, 2, generator=gen) * 120 + 4
    which = torch.randint(objects, (num,), generator=gen)
    centre = centres[which] + torch.randn(num, 2, generator=gen) * 4
    size = sizes[which] * (1 + 0.1 * torch.randn(num, 2, generator=gen)).abs()
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    logits = torch.randn(num, num_classes + 1, generator=gen) * 2 - 4
    scores = (logits.sigmoid() * (torch.rand(num, 1, generator=gen) * 0.9 + 0.05)).sqrt()
    return boxes, scores


def _mmdet(boxes, scores, score_thr, max_num):
    return multiclass_nms(boxes, scores, score_thr, ConfigDict(type='nms', iou_threshold=0.5), max_num)


@pytest.mark.parametrize('num, num_classes, score_thr, max_num', [
    (64, 30, 0.0, 100),      # 1920 candidates: the top-k restriction decides (and may need to grow)
    (64, 30, 0.3, 300),      # fewer candidates than the restriction: plain class-wise NMS
    (40, 200, 0.0, 5),       # 8000 candidates, tiny top-k
    (48, 10, 0.0, -1),       # no top-k: every survivor
])
def test_class_wise_nms_equals_mmdet_multiclass_nms(num, num_classes, score_thr, max_num):
    boxes, scores = _detections(num, num_classes, seed=num + num_classes)
    dets, labels = class_wise_nms(boxes, scores, score_thr, 0.5, max_num)
    ref_dets, ref_labels = _mmdet(boxes, scores, score_thr, max_num)
    assert 0 < len(dets) == len(ref_dets)
    assert torch.equal(labels, ref_labels)
    assert torch.equal(dets, ref_dets)


def test_restricted_nms_grows_until_enough_detections_survive(monkeypatch):
    """Many identical boxes per class: the first top-k restriction keeps too few; it must grow."""
    boxes = torch.tensor([[10., 10., 50., 50.]]).repeat(50, 1) + torch.rand(50, 1) * 0.5
    scores = torch.rand(50, 41)
    dets, labels = class_wise_nms(boxes, scores, 0.0, 0.5, 40)
    ref_dets, ref_labels = _mmdet(boxes, scores, 0.0, 40)
    assert len(dets) == 40 and torch.equal(labels, ref_labels) and torch.equal(dets, ref_dets)


def test_per_class_loop_for_huge_candidate_sets(monkeypatch):
    monkeypatch.setattr(postprocess, '_MAX_JOINT_NMS', 50)
    boxes, scores = _detections(64, 30, seed=3)
    dets, labels = class_wise_nms(boxes, scores, 0.0, 0.5, 100)
    ref_dets, ref_labels = _mmdet(boxes, scores, 0.0, 100)
    assert torch.equal(labels, ref_labels) and torch.equal(dets, ref_dets)


def test_no_candidate_gives_empty_results():
    boxes, scores = _detections(8, 5, seed=0)
    dets, labels = class_wise_nms(boxes, scores, 2.0, 0.5, 100)
    assert dets.shape == (0, 5) and labels.shape == (0,)


@pytest.mark.parametrize('threshold', [0.5, -1.0])
def test_paste_masks_equals_mmdet_fcn_mask_head(threshold):
    gen = torch.Generator().manual_seed(0)
    height, width = 90, 130
    wh = torch.rand(40, 2, generator=gen) * 80 + 0.3  # some boxes well under a pixel wide
    x0y0 = torch.rand(40, 2, generator=gen) * torch.tensor([width + 18., height + 18.]) - 20
    x0y0 = torch.maximum(x0y0, 1 - wh)  # every box reaches into the image (mmdet raises otherwise)
    boxes = torch.cat([x0y0, x0y0 + wh], dim=1)
    boxes[0] = torch.tensor([125., 85., 160., 120.])  # mostly outside the image
    logits = torch.randn(40, 1, 28, 28, generator=gen) * 3
    head = FCNMaskHead(num_convs=0, in_channels=1, conv_out_channels=1, num_classes=1, class_agnostic=True)
    ref = head._predict_by_feat_single(logits, boxes.clone(), torch.zeros(40, dtype=torch.long),
                                       dict(ori_shape=(height, width), scale_factor=(1.0, 1.0)),
                                       ConfigDict(mask_thr_binary=threshold), rescale=True)
    ours = paste_masks(logits[:, 0].sigmoid(), boxes, height, width, threshold)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    assert torch.equal(ours, ref)
    assert ours.any(dim=(1, 2)).sum() > 30
    outside = paste_masks(logits[:1, 0].sigmoid(), torch.tensor([[-30., -30., -10., -5.]]), height, width,
                          threshold)
    assert not outside.any()  # (mmdet's pasting raises on such a box)


def test_roi_align_runs_through_torchvision_in_eval_mode_with_identical_values(repo_root):
    from mmdet.registry import MODELS
    from mmengine.config import Config

    import xpaste_mm  # noqa: F401  (registers the RoI head)
    cfg = Config.fromfile(str(repo_root / 'configs/_base_/models/centernet2_r50_fpn.py')).model.roi_head
    cfg.mask_roi_extractor.out_channels = cfg.bbox_roi_extractor.out_channels = 8
    cfg.mask_head.update(num_convs=1, in_channels=8, conv_out_channels=8, num_classes=3)
    for bbox_head in cfg.bbox_head:
        bbox_head.update(in_channels=8, fc_out_channels=16, num_classes=3)
        bbox_head.loss_cls.update(num_classes=3, use_fed_loss=False, stats_file=None)
    head = MODELS.build(cfg)
    layers = [*head.bbox_roi_extractor[0].roi_layers, *head.mask_roi_extractor.roi_layers]
    gen = torch.Generator().manual_seed(0)
    feats = tuple(torch.randn(1, 8, 64 // s, 96 // s, generator=gen) for s in (8, 16, 32))
    xy = torch.rand(30, 2, generator=gen) * 80
    rois = torch.cat([torch.zeros(30, 1), xy, xy + torch.rand(30, 2, generator=gen) * 60 + 1], dim=1)
    train_out = head.train().mask_roi_extractor(feats, rois)
    assert not any(layer.use_torchvision for layer in layers)
    eval_out = head.eval().mask_roi_extractor(feats, rois)
    assert all(layer.use_torchvision for layer in layers)
    torch.testing.assert_close(eval_out, train_out, rtol=0, atol=1e-6)
