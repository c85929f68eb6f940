"""Inference parity of the CenterNet2 port with detectron2's CenterNet2 (X-Paste).

Each test re-implements the detectron2 / CenterNet2 rule straight from the port map
(/work/shared/reference/centernet2_portmap.md sections 1.6, 1.7, 2.3) with torchvision ops
(``roi_align(aligned=True)`` = ROIAlignV2, ``batched_nms``) and compares it with our modules on random
inputs, so a wrong level rule, RoIAlign flavour, box decoding, score fusion or NMS shows up as a mismatch.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import roi_align as tv_roi_align

import xpaste_mm  # noqa: F401  (registers the modules)

MODEL_CONFIG = Path(__file__).resolve().parents[1] / 'configs/_base_/models/centernet2_r50_fpn.py'
STRIDES = (8, 16, 32)
REG_WEIGHTS = ((10., 10., 5., 5.), (20., 20., 10., 10.), (30., 30., 15., 15.))
SCALE_CLAMP = math.log(1000.0 / 16)
IMG_H, IMG_W = 200, 264  # resized image (img_shape); the padded input is 224 x 288
NUM_CLASSES = 4


# --------------------------------------------------------------------------- detectron2 reference
def d2_level(boxes: torch.Tensor) -> torch.Tensor:
    """detectron2 ``assign_boxes_to_levels``: floor(4 + log2(sqrt(area) / 224)), clamped to [3, 5]."""
    sizes = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
    return torch.floor(4 + torch.log2(sizes / 224 + 1e-8)).clamp(3, 5).long() - 3


def d2_pool(feats, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """ROIPooler with ROIAlignV2 (aligned=True, sampling_ratio=0) on P3-P5."""
    levels = d2_level(boxes)
    out = feats[0].new_zeros(len(boxes), feats[0].shape[1], size, size)
    for level, (feat, stride) in enumerate(zip(feats, STRIDES)):
        inds = torch.nonzero(levels == level).squeeze(1)
        if len(inds):
            rois = torch.cat([boxes.new_zeros(len(inds), 1), boxes[inds]], dim=1)
            out[inds] = tv_roi_align(feat, rois, size, 1.0 / stride, 0, aligned=True)
    return out


def d2_apply_deltas(deltas: torch.Tensor, boxes: torch.Tensor, weights) -> torch.Tensor:
    """``Box2BoxTransform.apply_deltas`` (dw/dh clamped on the upper side only)."""
    wx, wy, ww, wh = weights
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = (deltas[:, 2] / ww).clamp(max=SCALE_CLAMP)
    dh = (deltas[:, 3] / wh).clamp(max=SCALE_CLAMP)
    px, py = dx * widths + ctr_x, dy * heights + ctr_y
    pw, ph = dw.exp() * widths, dh.exp() * heights
    return torch.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph], dim=1)


def d2_clip(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                        boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)


def d2_cascade_inference(head, feats, proposals, proposal_scores, score_thr, nms_thr, topk):
    """``DeticCascadeROIHeads._forward_box`` (test), ``fast_rcnn_inference`` and the empty-box filter of
    ``detector_postprocess``, using our layers' weights."""
    boxes, probs = proposals, []
    for stage in range(3):
        bbox_head = head.bbox_head[stage]
        x = d2_pool(feats, boxes, 7).flatten(1)
        for fc in bbox_head.shared_fcs:
            x = torch.relu(fc(x))
        probs.append(bbox_head.fc_cls(x).sigmoid())
        pred = d2_apply_deltas(bbox_head.fc_reg(x), boxes, REG_WEIGHTS[stage])
        boxes = d2_clip(pred, IMG_H, IMG_W)  # next stage's proposals; clipped again by fast_rcnn_inference
    scores = (sum(probs) / 3 * proposal_scores[:, None]).sqrt()[:, :-1]
    inds = torch.nonzero(scores > score_thr)
    det_boxes, det_scores, labels = boxes[inds[:, 0]], scores[inds[:, 0], inds[:, 1]], inds[:, 1]
    keep = tv_batched_nms(det_boxes, det_scores, labels, nms_thr)[:topk]
    det_boxes, det_scores, labels = det_boxes[keep], det_scores[keep], labels[keep]
    non_empty = (det_boxes[:, 2] > det_boxes[:, 0]) & (det_boxes[:, 3] > det_boxes[:, 1])  # postprocess
    return det_boxes[non_empty], det_scores[non_empty], labels[non_empty]


# --------------------------------------------------------------------------- our modules
def _model_cfg():
    return Config.fromfile(str(MODEL_CONFIG))


def _roi_head(test_cfg: dict, with_mask: bool = False):
    """The RoI head of the real R50 config (extractors, coders, heads), narrowed to 8 channels."""
    roi_cfg = _model_cfg().model.roi_head
    if with_mask:
        roi_cfg.mask_roi_extractor.out_channels = 8
        roi_cfg.mask_head.update(num_convs=1, in_channels=8, conv_out_channels=8, num_classes=NUM_CLASSES)
    else:
        roi_cfg.pop('mask_roi_extractor')
        roi_cfg.pop('mask_head')
    roi_cfg.bbox_roi_extractor.out_channels = 8
    for bbox_head in roi_cfg.bbox_head:
        bbox_head.update(in_channels=8, fc_out_channels=16, num_classes=NUM_CLASSES)
        bbox_head.loss_cls.update(num_classes=NUM_CLASSES, use_fed_loss=False, stats_file=None)
    roi_cfg.test_cfg = ConfigDict(test_cfg)
    head = MODELS.build(roi_cfg)
    torch.manual_seed(0)
    for bbox_head in head.bbox_head:  # weights large enough for varied scores and deltas
        for layer in [*bbox_head.shared_fcs, bbox_head.fc_cls, bbox_head.fc_reg]:
            torch.nn.init.normal_(layer.weight, std=0.3)
            torch.nn.init.normal_(layer.bias, std=0.3)
    if with_mask:
        head.mask_head.init_weights()
        torch.nn.init.normal_(head.mask_head.conv_logits.weight, std=1.0)
    return head.eval()


def _random_proposals(num: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of every size (P3 to P5, some reaching past the image, as CenterNet's are) and scores."""
    centers = torch.rand(num, 2, generator=generator) * torch.tensor([IMG_W + 40., IMG_H + 40.]) - 20
    sizes = torch.exp(torch.rand(num, 2, generator=generator) * math.log(600 / 6)) * 6
    boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
    return boxes, torch.rand(num, generator=generator) * 0.9 + 0.05


def _sorted_dets(boxes, scores, labels):
    order = sorted(range(len(scores)), key=lambda i: (int(labels[i]), -float(scores[i])))
    return boxes[order], scores[order], labels[order]


def test_roi_extractor_levels_follow_detectron2_canonical_rule():
    """finest_scale=112 puts sqrt(area) < 224 on P3, [224, 448) on P4, >= 448 on P5 (canonical 224 / 4)."""
    extractor = _roi_head(dict(score_thr=0.02, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300)
                          ).bbox_roi_extractor[0]
    sides = torch.tensor([4., 100., 223.9, 224., 224.1, 300., 447.9, 448., 448.1, 900., 2000.])
    rois = torch.cat([torch.zeros(len(sides), 1), torch.zeros(len(sides), 2), sides[:, None],
                      sides[:, None]], dim=1)
    assert extractor.map_roi_levels(rois, 3).tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert extractor.map_roi_levels(rois, 3).tolist() == d2_level(rois[:, 1:]).tolist()
    # Non-square boxes: the rule uses sqrt(area), e.g. 112 x 448 -> sqrt = 224 -> P4.
    assert extractor.map_roi_levels(torch.tensor([[0., 0., 0., 448., 112.]]), 3).tolist() == [1]


@pytest.mark.parametrize('max_per_img', [300, 25])
def test_cascade_inference_matches_detectron2(max_per_img):
    """Pooling (levels + ROIAlignV2), 3-stage decoding with clipping, the mean of the sigmoid
    probabilities with the background column, sqrt(p * proposal score), score > 0.02, class-wise NMS 0.5
    and the top-k cut agree with the detectron2 rules."""
    head = _roi_head(dict(score_thr=0.02, nms=dict(type='nms', iou_threshold=0.5), max_per_img=max_per_img))
    generator = torch.Generator().manual_seed(1)
    feats = tuple(torch.randn(1, 8, 224 // s, 288 // s, generator=generator) for s in STRIDES)
    boxes, scores = _random_proposals(60, generator)
    sample = DetDataSample(metainfo=dict(img_shape=(IMG_H, IMG_W), ori_shape=(IMG_H, IMG_W),
                                         scale_factor=(1., 1.), batch_input_shape=(224, 288)))
    with torch.no_grad():
        ours = head.predict(feats, [InstanceData(bboxes=boxes, scores=scores)], [sample], rescale=False)[0]
        ref = d2_cascade_inference(head, feats, boxes, scores, 0.02, 0.5, max_per_img)
    assert 10 < len(ref[1]) <= max_per_img
    ours_sorted = _sorted_dets(ours.bboxes, ours.scores, ours.labels)
    ref_sorted = _sorted_dets(*ref)
    assert ours_sorted[2].tolist() == ref_sorted[2].tolist()
    torch.testing.assert_close(ours_sorted[1], ref_sorted[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_sorted[0], ref_sorted[0], rtol=1e-5, atol=1e-3)


def d2_paste_masks(mask_probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """detectron2 ``paste_masks_in_image`` (whole image, bilinear grid-sample, ``>= 0.5``)."""
    x0, y0, x1, y1 = boxes.split(1, dim=1)
    img_y = (torch.arange(height, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    img_x = (torch.arange(width, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    grid = torch.stack([img_x[:, None, :].expand(-1, height, -1), img_y[:, :, None].expand(-1, -1, width)],
                       dim=3)
    pasted = torch.nn.functional.grid_sample(mask_probs[:, None], grid, align_corners=False)[:, 0]
    return pasted >= 0.5


def test_masks_and_rescaled_boxes_match_detectron2_postprocess():
    """The single mask head runs on the final boxes (network input coordinates, ROIAlignV2 14 x 14); boxes
    are divided by the resize factors and the sigmoid masks pasted into the original image at >= 0.5."""
    head = _roi_head(dict(score_thr=0.02, nms=dict(type='nms', iou_threshold=0.5), max_per_img=30,
                          mask_thr_binary=0.5), with_mask=True)
    generator = torch.Generator().manual_seed(3)
    feats = tuple(torch.randn(1, 8, 224 // s, 288 // s, generator=generator) for s in STRIDES)
    boxes, scores = _random_proposals(20, generator)
    ori_h, ori_w = 160, 220
    scale = (IMG_W / ori_w, IMG_H / ori_h)
    sample = DetDataSample(metainfo=dict(img_shape=(IMG_H, IMG_W), ori_shape=(ori_h, ori_w),
                                         scale_factor=scale, batch_input_shape=(224, 288)))
    proposals = InstanceData(bboxes=boxes, scores=scores)
    with torch.no_grad():
        ours = head.predict(feats, [proposals], [sample], rescale=True)[0]
        net_boxes, ref_scores, _ = d2_cascade_inference(head, feats, boxes, scores, 0.02, 0.5, 30)
        mask_probs = head.mask_head(d2_pool(feats, net_boxes, 14))[:, 0].sigmoid()
    ref_boxes = net_boxes / torch.tensor(scale).repeat(2)
    ref_masks = d2_paste_masks(mask_probs, ref_boxes, ori_h, ori_w)
    order_ours, order_ref = ours.scores.argsort(descending=True), ref_scores.argsort(descending=True)
    assert len(order_ours) == len(order_ref) > 5
    torch.testing.assert_close(ours.bboxes[order_ours], ref_boxes[order_ref], rtol=1e-5, atol=1e-3)
    assert ours.masks.shape == (len(order_ours), ori_h, ori_w) and ours.masks.dtype == torch.bool
    mismatched = (ours.masks[order_ours] != ref_masks[order_ref]).sum().item()
    assert mismatched <= 2, mismatched  # ties at exactly 0.5 aside
    assert 0 < ours.masks.float().mean() < 1


def c2_proposals(heatmaps, regressions, pre_nms_topk, nms_thr, post_nms_topk):
    """CenterNet ``predict_single_level`` + ``nms_and_topK`` for one image (ONLY_PROPOSAL, WITH_AGN_HM)."""
    boxes, scores = [], []
    for (stride, heatmap), regression in zip(zip((8, 16, 32, 64, 128), heatmaps), regressions):
        _, _, height, width = heatmap.shape
        ys, xs = torch.meshgrid(torch.arange(height) * stride, torch.arange(width) * stride, indexing='ij')
        grids = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float() + stride // 2
        prob = heatmap.sigmoid().reshape(-1)
        ltrb = (regression[0] * stride).permute(1, 2, 0).reshape(-1, 4)
        cand = torch.nonzero(prob > 1e-4).squeeze(1)
        level_scores = prob[cand]
        if len(cand) > pre_nms_topk:
            level_scores, top = level_scores.topk(pre_nms_topk)
            cand = cand[top]
        g, d = grids[cand], ltrb[cand]
        det = torch.stack([g[:, 0] - d[:, 0], g[:, 1] - d[:, 1], g[:, 0] + d[:, 2], g[:, 1] + d[:, 3]], dim=1)
        det[:, 2] = torch.max(det[:, 2], det[:, 0] + 0.01)
        det[:, 3] = torch.max(det[:, 3], det[:, 1] + 0.01)
        boxes.append(det)
        scores.append(level_scores.sqrt())
    boxes, scores = torch.cat(boxes), torch.cat(scores)
    keep = tv_batched_nms(boxes, scores, torch.zeros(len(scores), dtype=torch.long), nms_thr)
    boxes, scores = boxes[keep], scores[keep]
    if len(scores) > post_nms_topk:
        thresh = torch.kthvalue(scores, len(scores) - post_nms_topk + 1).values
        boxes, scores = boxes[scores >= thresh], scores[scores >= thresh]
    return boxes, scores


def test_proposal_decoding_matches_centernet():
    rpn_cfg = _model_cfg().model.rpn_head
    rpn_cfg.update(in_channels=32, feat_channels=32, test_cfg=_model_cfg().model.test_cfg.rpn)
    head = MODELS.build(rpn_cfg).eval()
    generator = torch.Generator().manual_seed(2)
    shapes = [(28, 36), (14, 18), (7, 9), (4, 5), (2, 3)]
    heatmaps = [torch.randn(1, 1, h, w, generator=generator) * 3 - 4 for h, w in shapes]
    regressions = [torch.rand(1, 4, h, w, generator=generator) * 6 for h, w in shapes]
    heatmaps[0][0, 0, :2] = -12.0  # some locations below the 1e-4 candidate threshold
    cfg = ConfigDict(score_thr=1e-4, nms_pre=300, nms=dict(type='nms', iou_threshold=0.9), max_per_img=256)
    ours = head.predict_by_feat(heatmaps, regressions, [dict(img_shape=(224, 288), scale_factor=(1., 1.))],
                                cfg=cfg)[0]
    ref_boxes, ref_scores = c2_proposals(heatmaps, regressions, 300, 0.9, 256)
    assert len(ours) == len(ref_scores) == 256
    order_ours, order_ref = ours.scores.argsort(descending=True), ref_scores.argsort(descending=True)
    torch.testing.assert_close(ours.scores[order_ours], ref_scores[order_ref])
    torch.testing.assert_close(ours.bboxes[order_ours], ref_boxes[order_ref])
