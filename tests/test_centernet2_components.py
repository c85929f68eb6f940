"""CenterNet2 building blocks against hand-computed values: proposal-head targets, heatmap focal loss,
ltrb GIoU, federated class sampling and loss, cascade training flow and test-time score fusion."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import xpaste_mm  # noqa: F401  (registers the modules)
from xpaste_mm.models.losses import (
    BinaryHeatmapFocalLoss,
    FederatedSigmoidCELoss,
    LTRBGIoULoss,
    load_federated_weights,
    sample_federated_classes,
)

INF = 1e8


def _proposal_head(**kwargs):
    cfg = dict(type='CenterNetProposalHead', in_channels=8, feat_channels=8,
               norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
               test_cfg=dict(score_thr=1e-4, nms_pre=1000, nms=dict(type='nms', iou_threshold=0.9),
                             max_per_img=256))
    cfg.update(kwargs)
    return MODELS.build(cfg)


# 64 x 64 input: levels of 8x8, 4x4, 2x2, 1x1, 1x1 cells.
FEATMAP_SIZES = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
LEVEL_SIZES = [64, 16, 4, 1, 1]


def test_heatmap_and_regression_targets_by_hand():
    head = _proposal_head()
    box = torch.tensor([[0., 0., 48., 48.]])  # centre (24, 24), half-diagonal 33.9 -> level 0 only
    pos_inds, reg, heatmap = head.get_targets(FEATMAP_SIZES, [torch.zeros(0, 4), box], torch.device('cpu'))
    level_start = [0, 128, 160, 168, 170]  # level-major with 2 images
    img1 = [start + size for start, size in zip(level_start, LEVEL_SIZES)]
    # Positive: image 1, level 0, cell (x=3, y=3) -> 64 + 3 * 8 + 3.
    assert pos_inds.tolist() == [64 + 27]
    # Image 0 has no objects: no regression, zero heatmap.
    assert (reg[:64] < 0).all() and (heatmap[:64] == 0).all()
    radius2 = 2 * 48 * 48 / 81  # (1/9)^2 * 2 * area > min_radius^2 = 16
    cell = lambda x, y, level=0: img1[level] + y * FEATMAP_SIZES[level][1] + x  # noqa: E731
    assert heatmap[cell(3, 3)] == pytest.approx(1.0)  # the peak (grid point (28, 28))
    assert heatmap[cell(2, 3)] == pytest.approx(math.exp(-32 / radius2), rel=1e-5)  # grid (20, 28)
    # Level 1 (stride 16): the GT's centre cell is a peak too, although the GT is not assigned there.
    assert heatmap[cell(1, 1, 1)] == pytest.approx(1.0)
    assert heatmap[cell(0, 1, 1)] == pytest.approx(math.exp(-256 / radius2), rel=1e-5)  # grid (8, 24)
    # Far cells fall below 1e-4 and become 0.
    assert heatmap[cell(7, 7)] == 0
    # Regression: 3x3 cells around the centre cell, in stride units; nothing elsewhere or on level 1.
    assert reg[cell(3, 3)].tolist() == pytest.approx([3.5, 3.5, 2.5, 2.5])
    assert reg[cell(2, 2)].tolist() == pytest.approx([2.5, 2.5, 3.5, 3.5])
    assert (reg[cell(1, 1)] < 0).all() and (reg[cell(5, 3)] < 0).all()
    assert (reg[cell(1, 1, 1)] < 0).all()
    assert int((reg.max(dim=1).values >= 0).sum()) == 9


def test_box_in_two_size_ranges_is_positive_on_both_levels_and_nearest_box_is_regressed():
    head = _proposal_head()
    big = torch.tensor([[0., 0., 100., 100.]])  # half-diagonal 70.7: in [0, 80] and [64, 160]
    pos_inds, _, _ = head.get_targets(FEATMAP_SIZES, [big], torch.device('cpu'))
    # centre (50, 50): level 0 cell (6, 6); level 1 cell (3, 3)
    assert sorted(pos_inds.tolist()) == [6 * 8 + 6, 64 + 3 * 4 + 3]
    # Two boxes sharing a cell: the location regresses the one whose centre is nearer (relative to radius).
    boxes = torch.tensor([[0., 0., 40., 40.], [8., 8., 40., 40.]])
    _, reg, _ = head.get_targets(FEATMAP_SIZES, [boxes], torch.device('cpu'))
    # Cell (2, 2) = grid (20, 20): centre of box 0 is (20, 20) (distance 0), of box 1 (24, 24).
    assert reg[2 * 8 + 2].tolist() == pytest.approx([2.5, 2.5, 2.5, 2.5])


def test_heatmap_focal_loss_by_hand():
    loss = BinaryHeatmapFocalLoss()
    logits = torch.tensor([0.0, 0.0, 2.0])
    targets = torch.tensor([1.0, 0.5, 0.0])
    pos, neg = loss(logits, targets, torch.tensor([0]), avg_factor=1.0)
    expected_pos = math.log(2) * 0.25 * 0.25 * 0.5  # -log(p)(1-p)^2 * alpha * pos_weight
    expected_neg = math.log(2) * 0.25 * 0.5 ** 4 * 0.75 * 0.5  # p = 0.88 >= 0.85 is ignored
    assert pos.item() == pytest.approx(expected_pos, rel=1e-5)
    assert neg.item() == pytest.approx(expected_neg, rel=1e-5)
    p2 = 1 / (1 + math.exp(-2.0))
    _, neg_all = BinaryHeatmapFocalLoss(ignore_high_fp=0)(logits, targets, torch.tensor([0]), avg_factor=2.0)
    assert neg_all.item() == pytest.approx(
        (math.log(2) * 0.25 * 0.5 ** 4 - math.log(1 - p2) * p2 ** 2) * 0.375 / 2, rel=1e-5)
    # Clamping: a saturated logit gives a finite loss and no gradient.
    saturated = torch.tensor([30.0], requires_grad=True)
    pos, _ = loss(saturated, torch.ones(1), torch.tensor([0]))
    pos.backward()
    assert pos.item() == pytest.approx(-math.log(1 - 1e-4) * 1e-8 * 0.125, rel=1e-3)
    assert saturated.grad.item() == 0


def test_ltrb_giou_loss_by_hand():
    loss = LTRBGIoULoss()
    same = torch.ones(1, 4)
    assert loss(same, same).item() == pytest.approx(0.0, abs=1e-7)
    # pred area 4 inside target area 16: IoU (4 + 1) / (16 + 1), enclosing box = target.
    assert loss(torch.ones(1, 4), torch.full((1, 4), 2.0)).item() == pytest.approx(12 / 17, rel=1e-6)
    # disjoint: pred covers x in [-2, 0], target x in [0, 2], both y in [-2, 0]...[0, 2] shifted diagonally
    pred = torch.tensor([[2.0, 2.0, 0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert loss(pred, target).item() == pytest.approx(1 - (1 / 9 - 8 / 16), rel=1e-6)
    weighted = LTRBGIoULoss(loss_weight=2.0)(torch.cat([pred, same]), torch.cat([target, same]),
                                             weight=torch.tensor([1.0, 1.0]), avg_factor=4.0)
    assert weighted.item() == pytest.approx(2 * (1 - (1 / 9 - 8 / 16)) / 4, rel=1e-6)


def test_federated_class_sampling():
    labels = torch.tensor([2, 2, 5, 10])  # 10 = background
    weights = torch.zeros(10)
    weights[[7, 8]] = 1.0
    chosen = sample_federated_classes(labels, 10, 5, weights)
    assert sorted(chosen.tolist()) == [2, 5, 7, 8, 10]
    # Fewer classes with weight than needed: only those are added, background never is.
    weights = torch.zeros(10)
    weights[7] = 1.0
    assert sorted(sample_federated_classes(labels, 10, 50, weights).tolist()) == [2, 5, 7, 10]
    # Enough classes present already: nothing is sampled.
    assert sorted(sample_federated_classes(labels, 10, 3, torch.ones(10)).tolist()) == [2, 5, 10]
    # Sampling probability is proportional to the weight.
    torch.manual_seed(0)
    weights = torch.tensor([1.0, 2.0, 3.0])
    draws = [int(sample_federated_classes(torch.tensor([3]), 3, 2, weights)[1]) for _ in range(3000)]
    freq = np.bincount(draws, minlength=3) / len(draws)
    assert freq == pytest.approx([1 / 6, 2 / 6, 3 / 6], abs=0.03)


def test_federated_weights_file_and_loss_by_hand(tmp_path):
    stats = tmp_path / 'cat_info.json'
    stats.write_text(json.dumps([{'id': 3, 'image_count': 9}, {'id': 1, 'image_count': 1},
                                 {'id': 2, 'image_count': 4}]))
    assert load_federated_weights(stats, 3).tolist() == pytest.approx([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match='num_classes=5'):
        load_federated_weights(stats, 5)
    with pytest.raises(ValueError, match='stats_file'):
        FederatedSigmoidCELoss(num_classes=3)

    logits = torch.zeros(2, 4)
    labels = torch.tensor([0, 3])  # a class-0 RoI and a background RoI
    plain = FederatedSigmoidCELoss(num_classes=3, use_fed_loss=False)
    assert plain(logits, labels).item() == pytest.approx(6 * math.log(2) / 2, rel=1e-6)
    # Classes 0 and background already make 2 = num_sample_cats: only column 0 is trained.
    fed = FederatedSigmoidCELoss(num_classes=3, stats_file=str(stats), num_sample_cats=2)
    assert fed(logits, labels).item() == pytest.approx(2 * math.log(2) / 2, rel=1e-6)
    # The background column never gets a gradient.
    logits.requires_grad_(True)
    plain(logits, labels).backward()
    assert (logits.grad[:, 3] == 0).all() and (logits.grad[:, :3] != 0).all()


# --------------------------------------------------------------------------- cascade RoI head
NUM_CLASSES = 2


def _roi_head(with_mask: bool = False, **kwargs):
    def bbox_head(weights):
        return dict(type='CenterNet2BBoxHead', in_channels=8, fc_out_channels=16, roi_feat_size=7,
                    num_classes=NUM_CLASSES,
                    bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                    target_stds=[1 / w for w in weights]),
                    loss_cls=dict(type='FederatedSigmoidCELoss', num_classes=NUM_CLASSES, use_fed_loss=False))

    def stage(iou, sampler):
        return dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                                  match_low_quality=False), sampler=sampler, mask_size=28, pos_weight=-1)

    extractor = dict(type='SingleRoIExtractor',
                     roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0), out_channels=8,
                     featmap_strides=[8, 16, 32], finest_scale=112)
    cfg = dict(
        type='CenterNet2RoIHead',
        bbox_roi_extractor=extractor,
        bbox_head=[bbox_head(w) for w in ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15))],
        train_cfg=[stage(0.6, dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                                   add_gt_as_proposals=True)),
                   stage(0.7, dict(type='PseudoSampler')), stage(0.8, dict(type='PseudoSampler'))],
        test_cfg=dict(score_thr=0.02, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300,
                      mask_thr_binary=0.5),
        **kwargs)
    if with_mask:
        cfg.update(mask_roi_extractor=dict(extractor, roi_layer=dict(type='RoIAlign', output_size=14,
                                                                      sampling_ratio=0)),
                   mask_head=dict(type='FCNMaskHead', num_convs=1, in_channels=8, conv_out_channels=8,
                                  num_classes=NUM_CLASSES, class_agnostic=True,
                                  loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)))
    head = MODELS.build(ConfigDict(cfg))
    head.init_weights()
    return head


def _features(size=200):
    torch.manual_seed(0)
    return tuple(torch.randn(1, 8, size // s, size // s) for s in (8, 16, 32))


def _sample(boxes, labels, is_pasted=None, size=200):
    gt = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.tensor(labels))
    masks = np.zeros((len(boxes), size, size), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, int(y1):int(y2), int(x1):int(x2)] = 1
    gt.masks = BitmapMasks(masks, size, size)
    if is_pasted is not None:
        gt.is_pasted = torch.tensor(is_pasted)
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                         scale_factor=(1., 1.),
                                         batch_input_shape=(size, size)))
    sample.gt_instances = gt
    return sample


def test_score_fusion_and_nms_at_test_time():
    head = _roi_head()
    head.eval()
    stage_bg_free_logits = ([0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [2.0, -2.0, 0.0])
    for bbox_head, logits in zip(head.bbox_head, stage_bg_free_logits):
        for fc in bbox_head.shared_fcs:
            torch.nn.init.zeros_(fc.weight)
            torch.nn.init.zeros_(fc.bias)
        for layer in (bbox_head.fc_cls, bbox_head.fc_reg):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        bbox_head.fc_cls.bias.data = torch.tensor(logits)
    proposals = InstanceData(
        bboxes=torch.tensor([[10., 10., 50., 50.], [12., 12., 50., 50.], [100., 100., 140., 140.]]),
        scores=torch.tensor([0.64, 0.25, 0.001]))
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    mean_prob = [sum(sig(s[c]) for s in stage_bg_free_logits) / 3 for c in range(2)]
    with torch.no_grad():
        result = head.predict(_features(), [proposals], [_sample([[0, 0, 1, 1]], [0])], rescale=False)[0]
    got = sorted(zip(result.scores.tolist(), result.labels.tolist(), result.bboxes.tolist()), reverse=True)
    expected = [  # (score, label, box): proposal 2 is suppressed by proposal 1 in both classes
        (math.sqrt(mean_prob[0] * 0.64), 0, [10., 10., 50., 50.]),
        (math.sqrt(mean_prob[1] * 0.64), 1, [10., 10., 50., 50.]),
        (math.sqrt(mean_prob[0] * 0.001), 0, [100., 100., 140., 140.]),  # 0.0265 > 0.02
    ]  # class 1 of the last proposal: sqrt(0.296 * 0.001) = 0.017 < score_thr
    assert len(got) == len(expected)
    for (score, label, box), (exp_score, exp_label, exp_box) in zip(got, expected):
        assert score == pytest.approx(exp_score, rel=1e-5)
        assert label == exp_label
        assert box == pytest.approx(exp_box, abs=1e-4)
    # Without the proposal score the fused score is the mean probability itself.
    head.mult_proposal_score = False
    with torch.no_grad():
        result = head.predict(_features(), [proposals], [_sample([[0, 0, 1, 1]], [0])], rescale=False)[0]
    assert result.scores.max().item() == pytest.approx(mean_prob[0], rel=1e-5)


def test_cascade_training_keeps_gt_boxes_and_does_not_resample():
    head = _roi_head(with_mask=True)
    head.train()
    seen = []
    for bbox_head in head.bbox_head:
        bbox_head.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    torch.manual_seed(0)
    xy = torch.rand(30, 2) * 120
    proposals = torch.cat([xy, xy + 20 + torch.rand(30, 2) * 40], dim=1)
    sample = _sample([[20, 20, 80, 90], [100, 40, 180, 120]], [0, 1])
    losses = head.loss(_features(), [InstanceData(bboxes=proposals, scores=torch.ones(30))], [sample])
    # Stage 0: 30 proposals + 2 GT boxes (all fit in 512); stages 1-2 take every box again.
    assert seen == [32, 32, 32]
    assert set(losses) == {f'loss_{k}_stage{s}' for k in ('cls', 'box_reg') for s in range(3)} | {'loss_mask'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_pasted_instances_can_be_left_out_of_box_and_mask_losses():
    sample_boxes = [[20, 20, 80, 90], [100, 40, 180, 120]]
    proposals = InstanceData(bboxes=torch.tensor([[22., 18., 82., 88.], [98., 44., 176., 118.]]),
                             scores=torch.ones(2))
    for ignore in (False, True):
        head = _roi_head(with_mask=True, ignore_pasted_in_box_loss=ignore, ignore_pasted_in_mask_loss=ignore)
        head.train()
        losses = head.loss(_features(), [proposals], [_sample(sample_boxes, [0, 1], is_pasted=[True, True])])
        box_losses = [losses[f'loss_box_reg_stage{s}'].item() for s in range(3)]
        if ignore:
            assert box_losses == [0.0, 0.0, 0.0] and losses['loss_mask'].item() == 0.0
            assert losses['loss_cls_stage0'].item() > 0  # classification is never masked
        else:
            assert min(box_losses) > 0 and losses['loss_mask'].item() > 0


def test_bbox_head_regression_normalisation_switch():
    head = MODELS.build(dict(type='CenterNet2BBoxHead', in_channels=4, fc_out_channels=8, roi_feat_size=1,
                             num_classes=3, loss_cls=dict(type='FederatedSigmoidCELoss', num_classes=3,
                                                          use_fed_loss=False)))
    labels = torch.tensor([0, 3, 3, 3])  # one foreground RoI out of four
    pred = torch.zeros(4, 4)
    targets = torch.zeros(4, 4)
    targets[0] = torch.tensor([1.0, -1.0, 2.0, 0.0])  # L1 sum 4
    weights = torch.zeros(4, 4)
    weights[0] = 1
    args = (torch.zeros(4, 4), pred, None, labels, torch.ones(4), targets, weights)
    assert head.loss(*args)['loss_bbox'].item() == pytest.approx(4 / 4)  # X-Paste: / (4 x foreground)
    head.reg_loss_norm = 'all_rois'
    assert head.loss(*args)['loss_bbox'].item() == pytest.approx(4 / 4)  # Detic: / number of RoIs (4)
    labels = torch.tensor([0, 3, 3, 3, 3, 3, 3, 3])
    args = (torch.zeros(8, 4), torch.zeros(8, 4), None, labels, torch.ones(8),
            torch.cat([targets, torch.zeros(4, 4)]), torch.cat([weights, torch.zeros(4, 4)]))
    assert head.loss(*args)['loss_bbox'].item() == pytest.approx(4 / 8)
    head.reg_loss_norm = 'foreground'
    assert head.loss(*args)['loss_bbox'].item() == pytest.approx(4 / 4)
    with pytest.raises(ValueError, match='reg_loss_norm'):
        MODELS.build(dict(type='CenterNet2BBoxHead', num_classes=3, reg_loss_norm='mean',
                          loss_cls=dict(type='FederatedSigmoidCELoss', num_classes=3, use_fed_loss=False)))


def test_proposals_are_sqrt_scores_top_k_and_unclipped():
    head = _proposal_head()
    head.init_weights()
    heatmaps = [torch.full((1, 1, h, w), -20.0) for h, w in FEATMAP_SIZES]
    regressions = [torch.zeros(1, 4, h, w) for h, w in FEATMAP_SIZES]
    heatmaps[0][0, 0, 0, 0] = 0.0   # p 0.5 at grid (4, 4)
    heatmaps[0][0, 0, 4, 4] = 2.0   # p 0.88 at grid (36, 36)
    heatmaps[1][0, 0, 0, 0] = -1.0  # p 0.27 at grid (8, 8), stride 16
    regressions[0][0, :, 0, 0] = torch.tensor([1.0, 1.0, 2.0, 2.0])  # 8, 8, 16, 16 px
    regressions[0][0, :, 4, 4] = torch.tensor([0.5, 0.5, 0.5, 0.5])
    regressions[1][0, :, 0, 0] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    cfg = ConfigDict(score_thr=1e-4, nms_pre=1000, nms=dict(type='nms', iou_threshold=0.9), max_per_img=2)
    result = head.predict_by_feat(heatmaps, regressions, [dict(img_shape=(64, 64), scale_factor=(1., 1.))],
                                  cfg=cfg)[0]
    assert result.scores.tolist() == pytest.approx([math.sqrt(1 / (1 + math.exp(-2))), math.sqrt(0.5)])
    assert result.bboxes.flatten().tolist() == pytest.approx([32, 32, 40, 40, -4, -4, 20, 20])  # not clipped
    assert (result.labels == 0).all()
