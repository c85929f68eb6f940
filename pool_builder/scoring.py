"""Stage ``score``: CLIP score and area of every (image, segmenter) mask.

Score = 100 x cosine similarity between the text "a photo of <name>" and the image composited on a
white background with the mask binarised (foreground = mask > 128); area = foreground fraction.
Any open_clip model works: a built-in name with a pretrained tag or checkpoint file, ``hf-hub:`` ids,
or a local folder (``open_clip_config.json`` + weights, i.e. ``local-dir:``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import ConfigError, ImageReadError
from .imaging import read_mask
from .layout import WorkDir
from .manifest import ImageRecord, read_category_manifest
from .prompts import DEFAULT_SCORE_TEMPLATE, score_text
from .records import append_jsonl, read_jsonl
from .sharding import Shard, mark_done
from .stage import FailureLog, StageSummary, get_logger, read_record_images
from .vocabulary import Category, Vocabulary

DEFAULT_CLIP_MODEL = 'ViT-L-14'
DEFAULT_CLIP_PRETRAINED = 'openai'
MASK_THRESHOLD = 128


@dataclass(frozen=True)
class ScoreOptions:
    """Scoring settings (X-Paste: OpenAI ViT-L/14, "a photo of {name}", threshold 128)."""

    model: str = DEFAULT_CLIP_MODEL
    pretrained: str | None = DEFAULT_CLIP_PRETRAINED
    precision: str = 'auto'
    batch_size: int = 32
    template: str = DEFAULT_SCORE_TEMPLATE

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError('score: batch_size must be >= 1')


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

    def __init__(self, model: str = DEFAULT_CLIP_MODEL, pretrained: str | None = DEFAULT_CLIP_PRETRAINED,
                 device: str = 'cpu', precision: str = 'auto', cache_dir: str | None = None) -> None:
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


def score_masks(work: WorkDir, vocabulary: Vocabulary, scorer: ClipScorer,
                options: ScoreOptions = ScoreOptions(), segmenters: Sequence[str] | None = None,
                shard: Shard = Shard(), categories: Sequence[int] | None = None,
                logger: logging.Logger | None = None) -> StageSummary:
    """Score every mask that has no score yet (default: all segmenters with a mask folder)."""
    logger = logger or get_logger(work, shard)
    summary = StageSummary('score')
    failures = FailureLog(work, 'score', shard, summary, logger)
    names = list(segmenters) if segmenters else work.segmenters_with_masks()
    todo = shard.select(vocabulary.subset(categories))
    logger.info(f'score: shard {shard}, {len(todo)} categories, segmenters {names}')
    for category in tqdm(todo, desc='score', unit='category', disable=None):
        try:
            _score_category(work, category, scorer, options, names, summary, failures)
        except Exception as exc:  # one category must not stop the run
            failures.record(f'category {category.id} ({category.name})', exc, with_traceback=True)
    mark_done(work, 'score', shard)
    logger.info(str(summary))
    return summary


def _score_category(work: WorkDir, category: Category, scorer: ClipScorer, options: ScoreOptions,
                    segmenters: Sequence[str], summary: StageSummary, failures: FailureLog) -> None:
    records = read_category_manifest(work, category.safe_name)
    text = score_text(category, options.template)
    scored = {name: {r['key'] for r in read_jsonl(work.score_file(name, category.safe_name))}
              for name in segmenters}
    for start in range(0, len(records), options.batch_size):
        # Fixed batches over the sorted records: a resumed run scores the same batches.
        batch = records[start:start + options.batch_size]
        masks = {name: [r for r in batch if work.mask_path(name, category.safe_name, r.stem).is_file()]
                 for name in segmenters}
        pending = {name: [r for r in with_mask if r.key not in scored[name]]
                   for name, with_mask in masks.items()}
        summary.skipped += sum(len(masks[n]) - len(pending[n]) for n in segmenters)
        if not any(pending.values()):
            continue
        images = read_record_images(work, batch, failures)
        for name in segmenters:
            if pending[name]:
                summary.done += _score_batch(work, category, scorer, name, masks[name], pending[name],
                                             images, text, failures)


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
