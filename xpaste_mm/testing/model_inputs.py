"""Random detector inputs: a batch as mmdet's data preprocessor receives it."""
from __future__ import annotations

import numpy as np


def random_detection_batch(batch_size: int, size: int, num_objects: int, num_classes: int,
                           seed: int = 0) -> dict:
    """``dict(inputs, data_samples)`` of ``batch_size`` random uint8 ``(3, size, size)`` images, each
    with ``num_objects`` random boxes (x1y1x2y2 pixels), labels in ``[0, num_classes)`` and box-shaped
    ``BitmapMasks``."""
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        wh = rng.uniform(0.03, 0.6, (num_objects, 2)) * size
        xy = rng.uniform(0, 1, (num_objects, 2)) * (size - wh)
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        masks = np.zeros((num_objects, size, size), np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
            masks[i, y1:y2, x1:x2] = 1
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.from_numpy(boxes),
                                           labels=torch.from_numpy(rng.integers(0, num_classes, num_objects)),
                                           masks=BitmapMasks(masks, size, size))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
