"""Stage ``score``: CLIP score and area of every (image, segmenter) mask.

Score = 100 x cosine similarity between the text "a photo of <name>" and the image composited on a
white background with the mask binarised (foreground = mask > 128); area = foreground fraction.
Any open_clip model works: a built-in name with a pretrained tag or checkpoint file, ``hf-hub:`` ids,
or a local folder (``open_clip_config.json`` + weights, i.e. ``local-dir:``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ImageReadError
from .imaging import read_mask
from .layout import WorkDir
from .manifest import ImageRecord, read_category_manifest
from .options import ScoreOptions
from .prompts import score_text
from .records import append_jsonl, read_jsonl
from .sharding import Shard
from .stage import FailureLog, Stage, StageSummary, read_record_images, register_stage
from .vocabulary import Category, Vocabulary

__all__ = ['ClipScorer', 'ScoreOptions', 'ScoreStage', 'composite_on_white', 'score_masks']

MASK_THRESHOLD = 128


def composite_on_white(image: np.ndarray, mask: np.ndarray,
                       threshold: int = MASK_THRESHOLD) -> tuple[np.ndarray, float]:
    """RGB image with background (mask <= threshold) painted white, and the foreground fraction."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f'mask shape {mask.shape} does not match image shape {image.shape[:2]}')
    foreground = mask > threshold
    composite = np.where(foreground[..., None], image, np.uint8(255))
    return composite, float(foreground.mean())


class ClipScorer:
    """An open_clip model with batched, tensor-side preprocessing (resize the short side to the
    model's input size with antialiased bicubic interpolation, centre crop, normalise)."""

    def __init__(self, model: str = ScoreOptions.model, pretrained: str | None = ScoreOptions.pretrained,
                 device: str = 'cpu', precision: str = ScoreOptions.precision,
                 cache_dir: str | None = None) -> None:
        import open_clip

        local = Path(model).expanduser()
        if local.is_dir():
            model, pretrained = f'local-dir:{local}', None
        elif model.startswith(('.', '/', '~')):
            raise FileNotFoundError(f'open_clip model folder {local} does not exist')
        if precision == 'auto':
            precision = 'fp16' if str(device).startswith('cuda') else 'fp32'
        self.model = open_clip.create_model(model, pretrained=pretrained, device=device,
                                            precision=precision, cache_dir=cache_dir).eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        cfg = self.model.visual.preprocess_cfg
        size = cfg['size']
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(cfg['mean'], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg['std'], device=device).view(1, 3, 1, 1)
        self.interpolation = cfg.get('interpolation', 'bicubic')
        self.device = device
        self.dtype = next(self.model.parameters()).dtype
        self._text_cache: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def encode_text(self, text: str) -> torch.Tensor:
        """L2-normalised text embedding (D,), cached per text."""
        if text not in self._text_cache:
            tokens = self.tokenizer([text]).to(self.device)
            self._text_cache[text] = F.normalize(self.model.encode_text(tokens).float(), dim=-1)[0]
        return self._text_cache[text]

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images (any sizes) -> normalised model input (B, 3, S, S). Images are resized
        one at a time on the model's device (cache-friendly on CPU; sizes may differ)."""
        batch = [self._resize_crop(torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
                                   .permute(2, 0, 1)[None].float() / 255.0)[0] for image in images]
        return ((torch.stack(batch) - self.mean) / self.std).to(self.dtype)

    def _resize_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Resize (B, 3, H, W) in [0, 1] so the short side fits the input size, then centre-crop,
        with torchvision's ``Resize(size)`` + ``CenterCrop(size)`` arithmetic on float tensors (what
        X-Paste's scoring applies): long side ``int(size * long / short)``, crop offset
        ``int(round(excess / 2))``, no clamping of the bicubic overshoot."""
        height, width = x.shape[-2:]
        short = min(self.size)
        if height <= width:
            new_size = (short, int(short * width / height))
        else:
            new_size = (int(short * height / width), short)
        new_size = (max(new_size[0], self.size[0]), max(new_size[1], self.size[1]))
        x = F.interpolate(x, size=new_size, mode=self.interpolation, antialias=True, align_corners=False)
        top = int(round((new_size[0] - self.size[0]) / 2.0))
        left = int(round((new_size[1] - self.size[1]) / 2.0))
        return x[..., top:top + self.size[0], left:left + self.size[1]]

    @torch.inference_mode()
    def score(self, images: Sequence[np.ndarray], text: str) -> np.ndarray:
        """100 x cosine similarity of each RGB uint8 image with ``text`` (float32, (B,))."""
        if not images:
            return np.zeros(0, np.float32)
        return self.score_pixels(self.preprocess(images), text)

    @torch.inference_mode()
    def score_pixels(self, pixels: torch.Tensor, text: str) -> np.ndarray:
        """Like :meth:`score` for an already preprocessed batch (B, 3, S, S)."""
        features = F.normalize(self.model.encode_image(pixels).float(), dim=-1)
        return (100.0 * features @ self.encode_text(text)).cpu().numpy().astype(np.float32)


@register_stage
class ScoreStage(Stage):
    """Stage ``score``: CLIP score and area of every mask that has no score yet.

    Args:
        options (ScoreOptions): CLIP model, batch size, text template and the segmenters to score
            (default: every segmenter with a mask folder).
        scorer (ClipScorer | None): a ready scorer (default: built from ``options`` on ``device``).
        Others: see :class:`~pool_builder.stage.Stage`.
    """

    name = 'score'
    options_cls = ScoreOptions

    def __init__(self, *args, scorer: ClipScorer | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scorer = scorer
        self.segmenters = list(self.options.segmenters or ())

    def prepare(self, todo: Sequence[Category]) -> None:
        if self.scorer is None:
            self.scorer = ClipScorer(self.options.model, self.options.pretrained, self.device,
                                     self.options.precision)
        self.segmenters = self.segmenters or self.work.segmenters_with_masks()
        self.logger.info(f'score: shard {self.shard}, {len(todo)} categories, segmenters {self.segmenters}')

    def process_category(self, category: Category) -> None:
        work, options, summary = self.work, self.options, self.summary
        records = read_category_manifest(work, category.safe_name)
        text = score_text(category, options.template)
        scored = {name: {r['key'] for r in read_jsonl(work.score_file(name, category.safe_name))}
                  for name in self.segmenters}
        for start in range(0, len(records), options.batch_size):
            # Fixed batches over the sorted records: a resumed run scores the same batches.
            batch = records[start:start + options.batch_size]
            masks = {name: [r for r in batch if work.mask_path(name, category.safe_name, r.stem).is_file()]
                     for name in self.segmenters}
            pending = {name: [r for r in with_mask if r.key not in scored[name]]
                       for name, with_mask in masks.items()}
            summary.skipped += sum(len(masks[n]) - len(pending[n]) for n in self.segmenters)
            if not any(pending.values()):
                continue
            images = read_record_images(work, batch, self.failures)
            for name in self.segmenters:
                if pending[name]:
                    summary.done += _score_batch(work, category, self.scorer, name, masks[name],
                                                 pending[name], images, text, self.failures)


def score_masks(work: WorkDir, vocabulary: Vocabulary, scorer: ClipScorer,
                options: ScoreOptions = ScoreOptions(), segmenters: Sequence[str] | None = None,
                shard: Shard = Shard(), categories: Sequence[int] | None = None,
                logger: logging.Logger | None = None) -> StageSummary:
    """Run :class:`ScoreStage` with a ready ``scorer`` (``segmenters`` overrides ``options``')."""
    if segmenters:
        options = replace(options, segmenters=tuple(segmenters))
    return ScoreStage(work, vocabulary, options, shard, scorer.device, categories, logger,
                      scorer=scorer).run()


def _score_batch(work: WorkDir, category: Category, scorer: ClipScorer, segmenter: str,
                 with_mask: Sequence[ImageRecord], pending: Sequence[ImageRecord],
                 images: dict[str, np.ndarray], text: str, failures: FailureLog) -> int:
    composites, areas, keys = [], [], []
    for record in with_mask:
        if record.key not in images:
            continue
        try:
            mask = read_mask(work.mask_path(segmenter, category.safe_name, record.stem))
            composite, area = composite_on_white(images[record.key], mask)
        except (ImageReadError, ValueError) as exc:
            failures.record(f'mask {segmenter}/{record.key}', exc)
            continue
        composites.append(composite)
        areas.append(area)
        keys.append(record.key)
    scores = scorer.score(composites, text)
    wanted = {r.key for r in pending}
    rows = [dict(key=k, score=round(float(s), 5), area=round(a, 6))
            for k, s, a in zip(keys, scores, areas) if k in wanted]
    append_jsonl(work.score_file(segmenter, category.safe_name), rows)
    return len(rows)
