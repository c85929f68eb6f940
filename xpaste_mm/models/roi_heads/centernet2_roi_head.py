"""Cascade RoI head of CenterNet2 as configured by Detic / X-Paste.

Differences from mmdet's ``CascadeRoIHead`` (each changes results):

- training: stage 0 assigns and samples the proposals (GT added); stages 1 and 2 take *all* boxes of the
  previous stage (GT-derived ones included), regressed, clipped to the image and with empty boxes
  removed, and only relabel them (``PseudoSampler``); the pooled features of every stage get their
  gradient scaled by ``1 / num_stages``;
- one class-agnostic mask head, trained on the stage-0 foreground RoIs and run on the final boxes;
- test: the stages' *sigmoid probabilities* are averaged and (``mult_proposal_score``) multiplied by the
  proposal score and square-rooted, then thresholded, class-wise NMS and top-k (:mod:`.postprocess`:
  NMS over the top candidates only; on CPU masks are pasted inside their boxes only);
- in eval mode (``torchvision_roi_align_at_test``) mmcv's ``RoIAlign`` layers run through torchvision's
  ``roi_align`` (the same values; about 2.5x faster on CPU), in training through mmcv's kernels;
- optional exclusion of RoIs matched to pasted instances (``gt_instances.is_pasted``) from the box and
  mask losses (X-Paste's ``USE_XPASTE_BOX_LOSS/MASK_LOSS = False`` ablations).

Boxes are x1y1x2y2 pixels of the network input (the resized image) unless ``rescale``.
"""
from __future__ import annotations

import numpy as np
import torch
from mmcv.ops import RoIAlign
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import empty_instances, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmdet.utils import ConfigType, InstanceList, MultiConfig
from mmengine.structures import InstanceData
from torch import Tensor

from .postprocess import class_wise_nms, paste_masks


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


@MODELS.register_module()
class CenterNet2RoIHead(CascadeRoIHead):
    """Cascade of ``num_stages`` box heads plus one mask head (see the module docstring).

    ``train_cfg`` is a list with one dict per stage (``assigner``, ``sampler``, ``pos_weight``; stage 0
    also ``mask_size``). ``test_cfg``: ``score_thr``, ``nms``, ``max_per_img``, ``mask_thr_binary``.

    Args:
        num_stages (int): cascade stages. Defaults to 3.
        stage_loss_weights (tuple[float]): weight of each stage's box losses. Defaults to
            ``(1.0, 1.0, 1.0)``.
        mult_proposal_score (bool): at test time, multiply the averaged class probabilities by the
            proposal score and take the square root (Detic / X-Paste). Defaults to True.
        ignore_pasted_in_box_loss (bool): leave RoIs matched to pasted instances out of the box
            losses. Defaults to False.
        ignore_pasted_in_mask_loss (bool): leave them out of the mask loss. Defaults to False.
        torchvision_roi_align_at_test (bool): in eval mode, run mmcv ``RoIAlign`` layers through
            torchvision's ``roi_align`` (identical values, faster on CPU). Defaults to True.
        **kwargs: the other arguments of mmdet's ``CascadeRoIHead``: ``bbox_roi_extractor``,
            ``bbox_head`` (one ``CenterNet2BBoxHead`` per stage, ``reg_class_agnostic=True``),
            ``mask_roi_extractor`` (required with a mask head), ``mask_head``, ``train_cfg``,
            ``test_cfg``, ``init_cfg``.
    """

    def __init__(self,
                 num_stages: int = 3,
                 stage_loss_weights: tuple[float, ...] = (1.0, 1.0, 1.0),
                 mult_proposal_score: bool = True,
                 ignore_pasted_in_box_loss: bool = False,
                 ignore_pasted_in_mask_loss: bool = False,
                 torchvision_roi_align_at_test: bool = True,
                 **kwargs) -> None:
        if kwargs.get('mask_head') is not None and kwargs.get('mask_roi_extractor') is None:
            raise ValueError('CenterNet2RoIHead: a mask_head needs its own mask_roi_extractor (14x14 RoIs)')
        self.mult_proposal_score = mult_proposal_score
        self.ignore_pasted_in_box_loss = ignore_pasted_in_box_loss
        self.ignore_pasted_in_mask_loss = ignore_pasted_in_mask_loss
        self.torchvision_roi_align_at_test = torchvision_roi_align_at_test
        super().__init__(num_stages=num_stages, stage_loss_weights=stage_loss_weights, **kwargs)
        if not all(head.reg_class_agnostic for head in self.bbox_head):
            raise ValueError('CenterNet2RoIHead: every stage needs reg_class_agnostic=True (the cascade '
                             'regresses one box per RoI)')

    def train(self, mode: bool = True) -> CenterNet2RoIHead:
        """Switch modes; in eval mode route average-pooling mmcv ``RoIAlign`` layers through torchvision."""
        super().train(mode)
        if self.torchvision_roi_align_at_test:
            extractors = [*self.bbox_roi_extractor] + ([self.mask_roi_extractor] if self.with_mask else [])
            for extractor in extractors:
                for layer in extractor.roi_layers:
                    if isinstance(layer, RoIAlign) and layer.pool_mode == 'avg':
                        layer.use_torchvision = not mode
        return self

    def init_mask_head(self, mask_roi_extractor: MultiConfig, mask_head: MultiConfig) -> None:
        """A single mask head and RoI extractor (``mask_head.*`` keys, not ``mask_head.{stage}.*``)."""
        self.share_roi_extractor = False
        self.mask_roi_extractor = MODELS.build(mask_roi_extractor)
        self.mask_head = MODELS.build(mask_head)

    # ------------------------------------------------------------------ shared pieces
    def _bbox_forward(self, stage: int, x: tuple[Tensor, ...], rois: Tensor) -> dict:
        extractor = self.bbox_roi_extractor[stage]
        bbox_feats = extractor(x[:extractor.num_inputs], rois)
        if self.training:
            bbox_feats = _ScaleGradient.apply(bbox_feats, 1.0 / self.num_stages)
        cls_score, bbox_pred = self.bbox_head[stage](bbox_feats)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=bbox_feats)

    def _mask_forward(self, x: tuple[Tensor, ...], rois: Tensor) -> Tensor:
        return self.mask_head(self.mask_roi_extractor(x[:self.mask_roi_extractor.num_inputs], rois))

    def _decode(self, stage: int, rois: Tensor, bbox_pred: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Boxes (n, 4) regressed by ``stage`` from ``rois`` (n, 5), each clipped to its image."""
        boxes = rois.new_zeros(len(rois), 4)
        for img, img_meta in enumerate(batch_img_metas):
            inds = torch.nonzero(rois[:, 0] == img).squeeze(1)
            if len(inds):
                decoded = self.bbox_head[stage].regress_by_class(rois[inds, 1:], None, bbox_pred[inds],
                                                                 img_meta)
                boxes[inds] = get_box_tensor(decoded)
        return boxes

    # ------------------------------------------------------------------ training
    def loss(self, x: tuple[Tensor, ...], rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict[str, Tensor]:
        """Losses ``loss_cls_stage{k}``, ``loss_box_reg_stage{k}`` and ``loss_mask``."""
        batch_gt_instances, batch_gt_instances_ignore, batch_img_metas = unpack_gt_instances(
            batch_data_samples)
        boxes_list = [res.bboxes.detach() for res in rpn_results_list]
        losses = {}
        for stage in range(self.num_stages):
            sampling_results = self._assign_and_sample(stage, boxes_list, batch_gt_instances,
                                                       batch_gt_instances_ignore)
            bbox_results = self.bbox_loss(stage, x, sampling_results, batch_gt_instances)
            weight = self.stage_loss_weights[stage]
            losses[f'loss_cls_stage{stage}'] = bbox_results['loss_bbox']['loss_cls'] * weight
            losses[f'loss_box_reg_stage{stage}'] = bbox_results['loss_bbox']['loss_bbox'] * weight
            if stage == 0 and self.with_mask:
                losses['loss_mask'] = self.mask_loss(x, sampling_results, batch_gt_instances)
            if stage < self.num_stages - 1:
                with torch.no_grad():
                    boxes_list = self._refine_training_boxes(stage, bbox_results, batch_img_metas)
        return losses

    def _assign_and_sample(self, stage: int, boxes_list: list[Tensor], batch_gt_instances: InstanceList,
                           batch_gt_instances_ignore: InstanceList) -> list[SamplingResult]:
        results = []
        for boxes, gt_instances, gt_ignore in zip(boxes_list, batch_gt_instances, batch_gt_instances_ignore):
            proposals = InstanceData(priors=boxes)
            assign_result = self.bbox_assigner[stage].assign(proposals, gt_instances, gt_ignore)
            results.append(self.bbox_sampler[stage].sample(assign_result, proposals, gt_instances))
        return results

    def bbox_loss(self, stage: int, x: tuple[Tensor, ...], sampling_results: list[SamplingResult],
                  batch_gt_instances: InstanceList | None = None) -> dict:
        """Forward one stage on its RoIs and compute its losses (``loss_bbox`` holds the loss dict)."""
        bbox_head = self.bbox_head[stage]
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(stage, x, rois)
        labels, label_weights, bbox_targets, bbox_weights = bbox_head.get_targets(
            sampling_results, self.train_cfg[stage])
        if self.ignore_pasted_in_box_loss and batch_gt_instances is not None:
            bbox_weights[self._matched_pasted(sampling_results, batch_gt_instances)] = 0
        bbox_results.update(
            rois=rois, bbox_targets=(labels, label_weights, bbox_targets, bbox_weights),
            loss_bbox=bbox_head.loss(bbox_results['cls_score'], bbox_results['bbox_pred'], rois, labels,
                                     label_weights, bbox_targets, bbox_weights))
        return bbox_results

    @staticmethod
    def _matched_pasted(sampling_results: list[SamplingResult], batch_gt_instances: InstanceList) -> Tensor:
        """Per RoI (positives first in each image, as in ``SamplingResult.priors``): whether it is
        matched to a pasted GT."""
        flags = []
        for res, gt_instances in zip(sampling_results, batch_gt_instances):
            pos_flags = res.pos_priors.new_zeros(len(res.pos_inds), dtype=torch.bool)
            if 'is_pasted' in gt_instances and len(res.pos_inds):
                pos_flags = gt_instances.is_pasted.to(pos_flags.device).bool()[res.pos_assigned_gt_inds]
            flags.extend([pos_flags, pos_flags.new_zeros(len(res.neg_inds))])
        return torch.cat(flags)

    def mask_loss(self, x: tuple[Tensor, ...], sampling_results: list[SamplingResult],
                  batch_gt_instances: InstanceList) -> Tensor:
        """Mean per-pixel BCE of the mask head on the stage-0 foreground RoIs. Targets are the GT masks
        cropped with the (unclipped) RoI, ROIAlign-resized to ``mask_size`` and thresholded at 0.5."""
        mask_size = self.train_cfg[0].mask_size
        mask_size = (mask_size, mask_size) if isinstance(mask_size, int) else tuple(mask_size)
        pos_boxes, targets, labels = [], [], []
        for res, gt_instances in zip(sampling_results, batch_gt_instances):
            keep = torch.ones(len(res.pos_inds), dtype=torch.bool, device=res.pos_priors.device)
            if self.ignore_pasted_in_mask_loss and 'is_pasted' in gt_instances:
                keep = ~gt_instances.is_pasted.to(keep.device).bool()[res.pos_assigned_gt_inds]
            boxes, gt_inds = res.pos_priors[keep], res.pos_assigned_gt_inds[keep]
            pos_boxes.append(boxes)
            labels.append(res.pos_gt_labels[keep])
            if len(boxes):
                cropped = gt_instances.masks.crop_and_resize(
                    boxes.detach().cpu().numpy(), mask_size, inds=gt_inds.cpu().numpy(), device=boxes.device,
                    binarize=True)
                targets.append(cropped.to_tensor(dtype=torch.float32, device=boxes.device))
        mask_preds = self._mask_forward(x, bbox2roi(pos_boxes))
        if len(mask_preds) == 0:
            return mask_preds.sum() * 0
        labels = torch.cat(labels)
        if self.mask_head.class_agnostic:
            labels = torch.zeros_like(labels)
        return self.mask_head.loss_mask(mask_preds.float(), torch.cat(targets), labels)

    def _refine_training_boxes(self, stage: int, bbox_results: dict,
                               batch_img_metas: list[dict]) -> list[Tensor]:
        """All RoIs of ``stage`` regressed by it, clipped to their image, empty boxes dropped."""
        rois = bbox_results['rois']
        boxes = self._decode(stage, rois, bbox_results['bbox_pred'].detach(), batch_img_metas)
        non_empty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return [boxes[(rois[:, 0] == img) & non_empty] for img in range(len(batch_img_metas))]

    # ------------------------------------------------------------------ inference
    def _cascade_scores_and_boxes(self, x: tuple[Tensor, ...], rpn_results_list: InstanceList,
                                  batch_img_metas: list[dict]) -> tuple[Tensor, Tensor, Tensor]:
        """Run every stage on the proposals. Returns the image index (n,) of each RoI, the fused class
        scores (n, C + 1) and the final boxes (n, 4) (last stage's deltas on its RoIs, clipped)."""
        rois = bbox2roi([res.bboxes for res in rpn_results_list])
        stage_probs = []
        for stage in range(self.num_stages):
            bbox_results = self._bbox_forward(stage, x, rois)
            stage_probs.append(bbox_results['cls_score'].float().sigmoid())
            boxes = self._decode(stage, rois, bbox_results['bbox_pred'], batch_img_metas)
            rois = torch.cat([rois[:, :1], boxes], dim=1)
        scores = torch.stack(stage_probs).mean(dim=0)
        if self.mult_proposal_score:
            if any('scores' not in res for res in rpn_results_list):
                raise ValueError('mult_proposal_score=True needs proposal scores (rpn_results.scores)')
            proposal_scores = torch.cat([res.scores for res in rpn_results_list]).float()
            scores = (scores * proposal_scores[:, None]).sqrt()
        return rois[:, 0].long(), scores, rois[:, 1:]

    def predict_bbox(self, x: tuple[Tensor, ...], batch_img_metas: list[dict], rpn_results_list: InstanceList,
                     rcnn_test_cfg: ConfigType, rescale: bool = False) -> InstanceList:
        """Detections per image: ``bboxes`` (k, 4), ``scores`` (k,), ``labels`` (k,); k <= max_per_img.
        A class-agnostic box yields one detection per class whose score passes ``score_thr``."""
        if sum(len(res) for res in rpn_results_list) == 0:
            return empty_instances(batch_img_metas, x[0].device, task_type='bbox',
                                   num_classes=self.bbox_head[-1].num_classes)
        img_inds, scores, boxes = self._cascade_scores_and_boxes(x, rpn_results_list, batch_img_metas)
        results_list = []
        for img, img_meta in enumerate(batch_img_metas):
            in_img = img_inds == img
            img_boxes, img_scores = boxes[in_img], scores[in_img]
            finite = torch.isfinite(img_boxes).all(dim=1) & torch.isfinite(img_scores).all(dim=1)
            dets, labels = self._nms(img_boxes[finite], img_scores[finite], rcnn_test_cfg)
            non_empty = (dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])
            dets, labels = dets[non_empty], labels[non_empty]
            det_boxes = dets[:, :4]
            if rescale:
                det_boxes = det_boxes / det_boxes.new_tensor(img_meta['scale_factor']).repeat(2)
            results_list.append(InstanceData(bboxes=det_boxes, scores=dets[:, 4], labels=labels))
        return results_list

    @staticmethod
    def _nms(boxes: Tensor, scores: Tensor, cfg: ConfigType) -> tuple[Tensor, Tensor]:
        """Class-wise NMS + top-k: :func:`class_wise_nms` for plain ``nms`` configs, mmdet's
        ``multiclass_nms`` otherwise (soft-NMS, ``class_agnostic``, ...)."""
        nms_cfg = dict(cfg.nms)
        if nms_cfg.pop('type', 'nms') == 'nms' and set(nms_cfg) == {'iou_threshold'}:
            return class_wise_nms(boxes, scores, cfg.score_thr, nms_cfg['iou_threshold'], cfg.max_per_img)
        return multiclass_nms(boxes, scores, cfg.score_thr, cfg.nms, cfg.max_per_img)

    def predict_mask(self, x: tuple[Tensor, ...], batch_img_metas: list[dict], results_list: InstanceList,
                     rescale: bool = False) -> InstanceList:
        """Masks of the final boxes from the single mask head, pasted into the image (bool (k, H, W)):
        the original image with ``rescale`` (boxes divided by ``scale_factor``), else the resized one."""
        mask_rois = bbox2roi([res.bboxes for res in results_list])
        if mask_rois.shape[0] == 0:
            return empty_instances(batch_img_metas, mask_rois.device, task_type='mask',
                                   instance_results=results_list,
                                   mask_thr_binary=self.test_cfg.mask_thr_binary)
        mask_preds = self._mask_forward(x, mask_rois).float()
        mask_preds = mask_preds.split([len(res) for res in results_list], 0)
        if mask_rois.device.type != 'cpu':  # mmdet's chunked whole-image pasting suits GPUs
            return self.mask_head.predict_by_feat(mask_preds=mask_preds, results_list=results_list,
                                                  batch_img_metas=batch_img_metas,
                                                  rcnn_test_cfg=self.test_cfg, rescale=rescale)
        threshold = self.test_cfg.mask_thr_binary
        for img, (preds, img_meta) in enumerate(zip(mask_preds, batch_img_metas)):
            results = results_list[img]
            if len(results) == 0:
                results_list[img] = empty_instances([img_meta], mask_rois.device, task_type='mask',
                                                    instance_results=[results],
                                                    mask_thr_binary=threshold)[0]
                continue
            probs = preds.sigmoid()
            probs = probs[:, 0] if self.mask_head.class_agnostic else probs[torch.arange(len(probs)),
                                                                            results.labels]
            scale = results.bboxes.new_tensor(img_meta['scale_factor']).repeat(2)
            img_h, img_w = img_meta['ori_shape'][:2]
            if rescale:
                results.bboxes = results.bboxes / scale
            else:  # the resized image's size, rounded as mmdet's FCNMaskHead does
                img_h = int(np.round(img_h * scale[1].item()))
                img_w = int(np.round(img_w * scale[0].item()))
            results.masks = paste_masks(probs, results.bboxes, img_h, img_w, threshold)
        return results_list

    def forward(self, x: tuple[Tensor, ...], rpn_results_list: InstanceList,
                batch_data_samples: SampleList) -> tuple:
        """Raw outputs without post-processing: fused scores (n, C + 1), final boxes (n, 4) and, with a
        mask head, mask logits of those boxes (n, 1, 28, 28)."""
        batch_img_metas = [sample.metainfo for sample in batch_data_samples]
        img_inds, scores, boxes = self._cascade_scores_and_boxes(x, rpn_results_list, batch_img_metas)
        outputs = (scores, boxes)
        if self.with_mask:
            outputs += (self._mask_forward(x, torch.cat([img_inds[:, None].to(boxes), boxes], dim=1)),)
        return outputs
