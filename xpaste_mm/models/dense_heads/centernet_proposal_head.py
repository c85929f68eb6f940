"""CenterNet proposal head of CenterNet2 (class-agnostic heatmap + ltrb regression on P3-P7).

Coordinates: boxes are x1y1x2y2 pixels of the padded network input; regression outputs are
(left, top, right, bottom) distances in units of the level stride. Locations are flattened level-major:
for each level, image 0's H*W locations (row-major), then image 1's, and so on.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, Scale
from mmcv.ops import batched_nms
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.registry import MODELS
from mmdet.utils import InstanceList, OptConfigType, OptInstanceList, OptMultiConfig, reduce_mean
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

INF = 1e8


@MODELS.register_module()
class CenterNetProposalHead(BaseDenseHead):
    """One shared tower of ``num_convs`` x (3x3 conv with bias, GroupNorm, ReLU) on every level, then a
    1-channel objectness heatmap (``conv_cls``) and a 4-channel ltrb regression
    (``relu(scale_l * conv_reg)``, one learnable scalar per level).

    Targets: a GT is positive at the grid cell holding its centre on every level whose size range
    (``sizes_of_interest``, compared with the box half-diagonal, ends inclusive) contains it. The heatmap
    target is ``exp(-min_n d^2 / r_n^2)`` with ``r_n^2 = max(2 delta^2 area_n, min_radius^2)``,
    ``delta = (1 - min_overlap) / (1 + min_overlap)``, rendered for every GT on every level (``d = 0`` at
    a GT's own centre cell); values below 1e-4 become 0. Locations in the 3x3 cells around a centre,
    inside the box and on a level whose size range fits, regress that box (nearest GT wins).

    Proposals: ``sigmoid > score_thr``, top ``nms_pre`` per level, boxes not clipped, score
    ``sqrt(sigmoid)``, class-agnostic NMS, top ``max_per_img`` (ties at the cut are kept).

    Args:
        in_channels (int): channels of every input feature level (the FPN output).
        feat_channels (int): channels of the shared tower convs. Defaults to 256.
        num_convs (int): conv + GroupNorm + ReLU blocks in the shared tower. Defaults to 4.
        strides (tuple[int]): stride in pixels of each input level (P3-P7). Defaults to
            ``(8, 16, 32, 64, 128)``.
        sizes_of_interest (tuple[tuple[float, float]]): per level, the range of GT half-diagonals in
            pixels (ends inclusive) assigned to it; one range per stride.
        min_overlap (float): sets ``delta = (1 - min_overlap) / (1 + min_overlap)``, which scales the
            heatmap Gaussian radius with the box size (CenterNet's rule). Defaults to 0.8.
        min_radius (float): smallest heatmap Gaussian radius ``r_n``, in pixels. Defaults to 4.
        prior_prob (float): initial objectness probability (heatmap bias init). Defaults to 0.01.
        bbox_bias_init (float): initial bias of the ltrb regression conv. Defaults to 8.0.
        norm_cfg (dict, optional): norm layer of the tower. Defaults to
            ``dict(type='GN', num_groups=32, requires_grad=True)``.
        loss_heatmap (dict, optional): heatmap loss config. Defaults to
            ``dict(type='BinaryHeatmapFocalLoss')``.
        loss_bbox (dict, optional): ltrb box loss config. Defaults to
            ``dict(type='LTRBGIoULoss', loss_weight=1.0)``.
        num_classes (int): must be 1 (the head is class-agnostic); kept for mmdet's head interface.
        train_cfg (dict, optional): the detector's ``train_cfg.rpn``; unused (targets need no assigner),
            accepted for mmdet's two-stage detector interface.
        test_cfg (dict, optional): the detector's ``test_cfg.rpn``, proposal settings: ``score_thr``
            (on the sigmoid), ``nms_pre`` (per level), ``nms`` (e.g.
            ``dict(type='nms', iou_threshold=0.9)``) and ``max_per_img``.
        init_cfg (dict or list[dict], optional): mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int = 256,
                 num_convs: int = 4,
                 strides: tuple[int, ...] = (8, 16, 32, 64, 128),
                 sizes_of_interest: tuple[tuple[float, float], ...] = (
                     (0, 80), (64, 160), (128, 320), (256, 640), (512, 1e7)),
                 min_overlap: float = 0.8,
                 min_radius: float = 4.0,
                 prior_prob: float = 0.01,
                 bbox_bias_init: float = 8.0,
                 norm_cfg: OptConfigType = None,
                 loss_heatmap: OptConfigType = None,
                 loss_bbox: OptConfigType = None,
                 num_classes: int = 1,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes != 1:
            raise ValueError(f'CenterNetProposalHead is class-agnostic: num_classes must be 1, got '
                             f'{num_classes}')
        if len(sizes_of_interest) != len(strides):
            raise ValueError(f'sizes_of_interest has {len(sizes_of_interest)} ranges for {len(strides)} '
                             'strides')
        self.in_channels = in_channels
        self.strides = tuple(int(s) for s in strides)
        self.sizes_of_interest = tuple((float(lo), float(hi)) for lo, hi in sizes_of_interest)
        self.delta = (1 - min_overlap) / (1 + min_overlap)
        self.min_radius = min_radius
        self.prior_prob = prior_prob
        self.bbox_bias_init = bbox_bias_init
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        norm_cfg = norm_cfg or dict(type='GN', num_groups=32, requires_grad=True)
        self.reg_convs = nn.ModuleList([
            ConvModule(in_channels if i == 0 else feat_channels, feat_channels, 3, padding=1, bias=True,
                       norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'))
            for i in range(num_convs)])
        self.conv_cls = nn.Conv2d(feat_channels, 1, 3, padding=1)
        self.conv_reg = nn.Conv2d(feat_channels, 4, 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in self.strides])
        self.loss_heatmap = MODELS.build(loss_heatmap or dict(type='BinaryHeatmapFocalLoss'))
        self.loss_bbox = MODELS.build(loss_bbox or dict(type='LTRBGIoULoss', loss_weight=1.0))

    def init_weights(self) -> None:
        """Convs ~ N(0, 0.01) with zero bias; heatmap bias from ``prior_prob``; regression bias
        ``bbox_bias_init``; GroupNorm weight 1, bias 0."""
        super().init_weights()
        convs = [block.conv for block in self.reg_convs] + [self.conv_cls, self.conv_reg]
        for conv in convs:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, 0)
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - self.prior_prob) / self.prior_prob))
        nn.init.constant_(self.conv_reg.bias, self.bbox_bias_init)

    def forward(self, x: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: heatmap logits (B, 1, H, W) and ltrb distances in stride units (B, 4, H, W)."""
        if len(x) != len(self.strides):
            raise ValueError(f'expected {len(self.strides)} feature levels, got {len(x)}')
        heatmaps, regressions = [], []
        for feat, scale in zip(x, self.scales):
            for block in self.reg_convs:
                feat = block(feat)
            heatmaps.append(self.conv_cls(feat))
            regressions.append(F.relu(scale(self.conv_reg(feat))))
        return heatmaps, regressions

    # ------------------------------------------------------------------ targets
    def grid_points(self, featmap_sizes: list[tuple[int, int]], device: torch.device) -> list[Tensor]:
        """Per level (H*W, 2) pixel coordinates ``(x * s + s // 2, y * s + s // 2)``, row-major."""
        grids = []
        for (height, width), stride in zip(featmap_sizes, self.strides):
            xs = torch.arange(width, dtype=torch.float32, device=device) * stride
            ys = torch.arange(height, dtype=torch.float32, device=device) * stride
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
            grids.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1) + stride // 2)
        return grids

    def get_targets(self, featmap_sizes: list[tuple[int, int]], gt_bboxes_list: list[Tensor],
                    device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Training targets for a batch.

        Returns ``pos_inds`` (P,) positive (centre) indices into the flattened locations, ``reg_targets``
        (B*M, 4) ltrb in stride units (``-INF`` rows where nothing is regressed) and ``heatmap_targets``
        (B*M,), all level-major.
        """
        grids = self.grid_points(featmap_sizes, device)
        num_locs = [len(g) for g in grids]
        strides = torch.cat([g.new_full((n,), float(s)) for g, n, s in zip(grids, num_locs, self.strides)])
        ranges = torch.cat([g.new_tensor(r).expand(n, 2) for g, n, r in zip(grids, num_locs,
                                                                            self.sizes_of_interest)])
        all_grids = torch.cat(grids)
        per_image = [self._image_targets(all_grids, strides, ranges, boxes.float().to(device))
                     for boxes in gt_bboxes_list]
        reg_targets, heatmap_targets = [], []
        for level, (start, num) in enumerate(zip(_starts(num_locs), num_locs)):
            for reg, heatmap in per_image:
                reg_targets.append(reg[start:start + num] / self.strides[level])
                heatmap_targets.append(heatmap[start:start + num])
        pos_inds = self._positive_indices(featmap_sizes, gt_bboxes_list, device)
        return pos_inds, torch.cat(reg_targets), torch.cat(heatmap_targets)

    def _image_targets(self, grids: Tensor, strides: Tensor, ranges: Tensor,
                       boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Pixel ltrb targets (M, 4) and heatmap targets (M,) of one image (all levels concatenated)."""
        num_locs, num_gts = len(grids), len(boxes)
        if num_gts == 0:
            return grids.new_full((num_locs, 4), -INF), grids.new_zeros(num_locs)
        ltrb = torch.stack([grids[:, None, 0] - boxes[None, :, 0], grids[:, None, 1] - boxes[None, :, 1],
                            boxes[None, :, 2] - grids[:, None, 0], boxes[None, :, 3] - grids[:, None, 1]],
                           dim=2)  # M x N x 4
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2  # N x 2
        loc_strides = strides[:, None, None]
        centers_discrete = (centers[None] / loc_strides).int().float() * loc_strides + loc_strides / 2
        offset = grids[:, None, :] - centers_discrete  # M x N x 2
        is_peak = (offset ** 2).sum(dim=2) == 0
        in_box = ltrb.min(dim=2).values > 0
        in_center3x3 = (offset.abs() <= loc_strides).all(dim=2) & in_box
        half_diag = ((ltrb[..., :2] + ltrb[..., 2:]) ** 2).sum(dim=2).sqrt() / 2
        in_level = (half_diag >= ranges[:, None, 0]) & (half_diag <= ranges[:, None, 1])
        regress = in_center3x3 & in_level

        dist2 = ((grids[:, None, :] - centers[None]) ** 2).sum(dim=2)
        dist2[is_peak] = 0
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        radius2 = (self.delta ** 2 * 2 * area).clamp(min=self.min_radius ** 2)
        weighted_dist2 = dist2 / radius2[None]

        heatmap = torch.exp(-weighted_dist2.min(dim=1).values)
        heatmap[heatmap < 1e-4] = 0
        masked = weighted_dist2.masked_fill(~regress, INF)
        min_dist, nearest = masked.min(dim=1)
        reg = ltrb[torch.arange(num_locs, device=grids.device), nearest]
        reg[min_dist == INF] = -INF
        return reg, heatmap

    def _positive_indices(self, featmap_sizes: list[tuple[int, int]], gt_bboxes_list: list[Tensor],
                          device: torch.device) -> Tensor:
        """Flattened (level-major) index of each GT's centre cell on each level it is assigned to."""
        num_imgs = len(gt_bboxes_list)
        ranges = torch.tensor(self.sizes_of_interest, dtype=torch.float32, device=device)  # L x 2
        pos_inds, base = [], 0
        level_bases = []
        for height, width in featmap_sizes:
            level_bases.append(base)
            base += num_imgs * height * width
        for img, boxes in enumerate(gt_bboxes_list):
            boxes = boxes.float().to(device)
            if len(boxes) == 0:
                continue
            centers = (boxes[:, :2] + boxes[:, 2:]) / 2
            half_diag = ((boxes[:, 2:] - boxes[:, :2]) ** 2).sum(dim=1).sqrt() / 2
            in_level = (half_diag[:, None] >= ranges[None, :, 0]) & (half_diag[:, None] <= ranges[None, :, 1])
            for level, ((height, width), stride) in enumerate(zip(featmap_sizes, self.strides)):
                cells = (centers[in_level[:, level]] / stride).long()
                cells_x = cells[:, 0].clamp(0, width - 1)
                cells_y = cells[:, 1].clamp(0, height - 1)
                pos_inds.append(level_bases[level] + img * height * width + cells_y * width + cells_x)
        if not pos_inds:
            return torch.zeros(0, dtype=torch.long, device=device)
        return torch.cat(pos_inds)

    # ------------------------------------------------------------------ losses
    def loss_by_feat(self, heatmaps: list[Tensor], regressions: list[Tensor],
                     batch_gt_instances: InstanceList, batch_img_metas: list[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict[str, Tensor]:
        """``loss_centernet_agn_pos``/``_neg`` (heatmap focal loss, normalised by the mean number of
        positives over GPUs) and ``loss_centernet_loc`` (GIoU, normalised by the mean number of
        regressed locations)."""
        featmap_sizes = [tuple(h.shape[-2:]) for h in heatmaps]
        device = heatmaps[0].device
        pos_inds, reg_targets, heatmap_targets = self.get_targets(
            featmap_sizes, [gt.bboxes for gt in batch_gt_instances], device)
        flat_heatmaps = torch.cat([h.permute(0, 2, 3, 1).reshape(-1) for h in heatmaps])
        flat_regressions = torch.cat([r.permute(0, 2, 3, 1).reshape(-1, 4) for r in regressions])

        num_pos_avg = max(reduce_mean(flat_heatmaps.new_tensor(float(len(pos_inds)))).item(), 1.0)
        loss_pos, loss_neg = self.loss_heatmap(flat_heatmaps, heatmap_targets, pos_inds,
                                               avg_factor=num_pos_avg)

        reg_inds = torch.nonzero(reg_targets.max(dim=1).values >= 0).squeeze(1)
        num_reg_avg = max(reduce_mean(flat_heatmaps.new_tensor(float(len(reg_inds)))).item(), 1.0)
        loss_loc = self.loss_bbox(flat_regressions[reg_inds], reg_targets[reg_inds], avg_factor=num_reg_avg)
        return dict(loss_centernet_agn_pos=loss_pos, loss_centernet_agn_neg=loss_neg,
                    loss_centernet_loc=loss_loc)

    # ------------------------------------------------------------------ proposals
    def predict_by_feat(self, heatmaps: list[Tensor], regressions: list[Tensor],
                        batch_img_metas: list[dict] | None = None, cfg: ConfigDict | None = None,
                        rescale: bool = False, with_nms: bool = True) -> InstanceList:
        """Proposals per image: ``InstanceData(bboxes, scores, labels)`` with x1y1x2y2 boxes on the
        network input (divided by ``scale_factor`` when ``rescale``), scores ``sqrt(sigmoid)`` and
        labels 0. ``cfg``: ``score_thr``, ``nms_pre`` (per level), ``nms`` and ``max_per_img``."""
        cfg = self.test_cfg if cfg is None else cfg
        featmap_sizes = [tuple(h.shape[-2:]) for h in heatmaps]
        grids = self.grid_points(featmap_sizes, heatmaps[0].device)
        results = []
        for img, img_meta in enumerate(batch_img_metas):
            boxes, scores = [], []
            for grid, heatmap, regression, stride in zip(grids, heatmaps, regressions, self.strides):
                level_boxes, level_scores = self._level_candidates(
                    grid, heatmap[img].detach(), regression[img].detach() * stride, cfg)
                boxes.append(level_boxes)
                scores.append(level_scores)
            results.append(self._nms_and_top_k(torch.cat(boxes), torch.cat(scores), img_meta, cfg,
                                               rescale, with_nms))
        return results

    @staticmethod
    def _level_candidates(grid: Tensor, heatmap: Tensor, regression: Tensor,
                          cfg: ConfigDict) -> tuple[Tensor, Tensor]:
        """Boxes (n, 4) and scores (n,) of one image on one level (``regression`` in pixels)."""
        prob = heatmap.float().sigmoid().reshape(-1)
        ltrb = regression.float().permute(1, 2, 0).reshape(-1, 4)
        keep = torch.nonzero(prob > cfg.score_thr).squeeze(1)
        prob = prob[keep]
        if len(keep) > cfg.nms_pre:
            prob, top = prob.topk(cfg.nms_pre, sorted=False)
            keep = keep[top]
        points, ltrb = grid[keep], ltrb[keep]
        x1 = points[:, 0] - ltrb[:, 0]
        y1 = points[:, 1] - ltrb[:, 1]
        x2 = torch.maximum(points[:, 0] + ltrb[:, 2], x1 + 0.01)
        y2 = torch.maximum(points[:, 1] + ltrb[:, 3], y1 + 0.01)
        return torch.stack([x1, y1, x2, y2], dim=1), prob.sqrt()

    @staticmethod
    def _nms_and_top_k(boxes: Tensor, scores: Tensor, img_meta: dict, cfg: ConfigDict, rescale: bool,
                       with_nms: bool) -> InstanceData:
        if with_nms and len(boxes) > 0:
            dets, keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.long), cfg.nms)
            boxes, scores = boxes[keep], dets[:, -1]
        if len(scores) > cfg.max_per_img:
            threshold = torch.kthvalue(scores.cpu(), len(scores) - cfg.max_per_img + 1).values.item()
            keep = scores >= threshold
            boxes, scores = boxes[keep], scores[keep]
        if rescale:
            boxes = boxes / boxes.new_tensor(img_meta['scale_factor']).repeat(2)
        return InstanceData(bboxes=boxes, scores=scores,
                            labels=torch.zeros(len(scores), dtype=torch.long, device=scores.device))


def _starts(sizes: list[int]) -> list[int]:
    """Start offset of each chunk when chunks of ``sizes`` are concatenated."""
    starts, total = [], 0
    for size in sizes:
        starts.append(total)
        total += size
    return starts
