"""pool_builder segmenters: weight-free OpenCV ones on drawn objects, tiny CLIPSeg and BiRefNet-style
models loaded through the real transformers code paths, and the registry's errors."""
import numpy as np
import pytest
import torch
from pool_helpers import iou, object_photo

from pool_builder.errors import ConfigError, UnknownSegmenterError
from pool_builder.segmenters import build_segmenter, parse_segmenter_spec
from pool_builder.segmenters.salient import BiRefNetSegmenter


@pytest.mark.parametrize('textured', [True, False])
def test_grabcut_finds_drawn_objects(textured):
    segmenter = build_segmenter('grabcut')
    photos = [object_photo(seed, (96, 128), textured=textured, shape=('ellipse', 'rect')[seed % 2])
              for seed in range(6)]
    masks = segmenter([p[0] for p in photos], [''] * len(photos))
    for (image, truth), mask in zip(photos, masks):
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        assert iou(mask > 128, truth) > 0.9


def test_grabcut_is_independent_of_batch_order_and_survives_flat_images():
    segmenter = build_segmenter('grabcut')
    images = [object_photo(seed, (64, 64))[0] for seed in range(3)]
    forward = segmenter(images, [''] * 3)
    backward = segmenter(images[::-1], [''] * 3)[::-1]
    assert all((a == b).all() for a, b in zip(forward, backward))
    flat = np.full((40, 40, 3), 128, np.uint8)
    assert segmenter([flat], [''])[0].shape == (40, 40)


def test_border_color_on_plain_backgrounds_and_full():
    segmenter = build_segmenter('border_color')
    for seed in range(4):
        image, truth = object_photo(seed, (80, 96), textured=False)
        assert iou(segmenter([image], [''])[0] > 128, truth) > 0.9
    full = build_segmenter('full')([image], [''])[0]
    assert full.shape == (80, 96) and (full == 255).all()


def test_clipseg_tiny_model_from_local_folder(tiny):
    segmenter = build_segmenter(dict(type='clipseg', model=str(tiny.clipseg), name='clipseg_tiny'))
    assert segmenter.name == 'clipseg_tiny' and segmenter.uses_text
    images = [object_photo(seed, size)[0] for seed, size in enumerate([(64, 80), (50, 50), (64, 80)])]
    texts = ['a photo of mug', 'a photo of bat', 'a photo of cat']
    masks = segmenter(images, texts)
    assert [m.shape for m in masks] == [(64, 80), (50, 50), (64, 80)]
    assert all(m.dtype == np.uint8 and m.min() == 0 and m.max() == 255 for m in masks)  # renormalised
    alone = segmenter(images[1:2], texts[1:2])[0]
    assert np.abs(alone.astype(int) - masks[1]).max() <= 1  # batching does not change a mask
    assert not (masks[0] == segmenter(images[:1], ['a photo of a shoe'])[0]).all()  # text matters


def test_birefnet_style_model_loads_with_trust_remote_code_from_local_folder(tiny):
    segmenter = build_segmenter(f'birefnet:model={tiny.birefnet},input_size=48,renormalize=false')
    images = [object_photo(seed, (40, 56))[0] for seed in range(2)]
    masks = segmenter(images, ['', ''])
    assert [m.shape for m in masks] == [(40, 56), (40, 56)] and masks[0].dtype == np.uint8
    # Same maps as running the loaded network by hand: ImageNet normalisation, last output, sigmoid.
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(48, 48), mode='bilinear', align_corners=False)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    with torch.no_grad():
        prob = segmenter.net(x)[-1].sigmoid()
    expected = torch.nn.functional.interpolate(prob, size=(40, 56), mode='bilinear', align_corners=False)
    np.testing.assert_allclose(masks[0], np.rint(expected[0, 0].numpy() * 255), atol=1)


def test_salient_segmenter_accepts_a_ready_module():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1))
    segmenter = BiRefNetSegmenter(module=net, input_size=32)
    masks = segmenter([np.zeros((20, 30, 3), np.uint8), np.full((20, 30, 3), 255, np.uint8)], ['', ''])
    assert [m.shape for m in masks] == [(20, 30), (20, 30)]


def test_registry_errors_are_clear(tmp_path):
    with pytest.raises(UnknownSegmenterError, match=r"unknown segmenter 'u2net'.*grabcut"):
        build_segmenter('u2net')
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['iterationz'\]"):
        build_segmenter('grabcut:iterationz=3')
    with pytest.raises(ConfigError, match='TYPE'):
        parse_segmenter_spec('grabcut:iterations')
    with pytest.raises(ConfigError, match='not a valid folder name'):
        build_segmenter(dict(type='grabcut', name='a/b'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        build_segmenter(dict(type='clipseg', model=str(tmp_path / 'missing')))
    assert parse_segmenter_spec('clipseg:model=/m/x,blur=0,renormalize=false') == dict(
        type='clipseg', model='/m/x', blur=0, renormalize=False)
