"""pool_builder stages with tiny local models: generate, ingest, segment, score, filter, inspect, and
sharding by category."""
import json

import cv2
import numpy as np
import pytest
import torch
from pool_helpers import (
    iou,
    object_photo,
    png_files,
    write_category_list,
    write_object_folders,
)

from pool_builder.errors import ConfigError, VocabularyError
from pool_builder.generate import (
    GenerateOptions,
    generate_images,
    load_text_to_image_pipeline,
    run_text_to_image,
)
from pool_builder.ingest import ingest_images
from pool_builder.inspect import inspect_pool
from pool_builder.layout import WorkDir
from pool_builder.manifest import read_category_manifest, read_manifest
from pool_builder.records import read_jsonl
from pool_builder.score import ClipScorer, ScoreOptions, composite_on_white, score_masks
from pool_builder.segment import segment_images
from pool_builder.segmenters import build_segmenter
from pool_builder.selection import FilterRule
from pool_builder.sharding import Shard, resolve_shard
from pool_builder.workspace import open_vocabulary
from xpaste_mm.datasets import PoolIndex

TINY_GENERATION = dict(images_per_category=3, batch_size=2, num_inference_steps=2, height=64, width=64)




@pytest.fixture(scope='module')
def pipe(tiny):
    return load_text_to_image_pipeline(str(tiny.stable_diffusion), 'cpu')


@pytest.fixture(scope='module')
def scorer(tiny):
    return ClipScorer(str(tiny.open_clip), None, 'cpu')


def test_generate_records_seeds_and_resume_regenerates_only_missing_images(tmp_path, tiny, pipe):
    work = WorkDir(tmp_path / 'work')
    vocab = open_vocabulary(work, write_category_list(tmp_path / 'cats.txt', ['mug', 'AC/DC_adapter']))
    options = GenerateOptions(model=str(tiny.stable_diffusion), **TINY_GENERATION)
    summary = generate_images(work, vocab, options, pipeline=pipe)
    assert (summary.done, summary.skipped, summary.ok) == (6, 0, True)
    records = read_category_manifest(work, 'AC_DC_adapter')
    assert [r.stem for r in records] == ['0000', '0001', '0002']
    assert {r.prompt for r in records} == {'a photo of a single AC/DC adapter'}
    assert len({r.seed for r in records}) == 3
    assert {r.generator for r in records} == {str(tiny.stable_diffusion)}
    first = png_files(work.root / 'images')
    assert len(first) == 6 and all(img.shape == (64, 64, 3) for img in first.values())
    # A recorded seed regenerates its image, alone in a batch.
    again = run_text_to_image(pipe, [records[2].prompt], [records[2].seed], options)[0]
    assert np.abs(again.astype(int) - first['AC_DC_adapter/0002.png'][..., ::-1]).max() <= 1
    # Resume: only the missing image is made again, identical to the first one.
    (work.root / 'images' / 'mug' / '0001.png').unlink()
    summary = generate_images(work, vocab, options, pipeline=pipe)
    assert (summary.done, summary.skipped) == (1, 5)
    assert all((png_files(work.root / 'images')[k] == v).all() for k, v in first.items())
    assert len(read_jsonl(work.manifest_file('generated', 'mug'))) == 4  # one re-appended record
    assert len(read_category_manifest(work, 'mug')) == 3  # ... that replaces the stale one


def test_generate_failing_category_is_recorded_and_the_run_goes_on(tmp_path, tiny, pipe):
    work = WorkDir(tmp_path / 'work')
    vocab = open_vocabulary(work, write_category_list(tmp_path / 'cats.txt', ['mug', 'bat', 'cat']))
    (work.root / 'images').mkdir(parents=True)
    (work.root / 'images' / 'bat').write_text('a file where the category folder should be')
    summary = generate_images(work, vocab, GenerateOptions(model=str(tiny.stable_diffusion),
                                                           **TINY_GENERATION), pipeline=pipe)
    assert summary.done == 6 and not summary.ok
    failures = read_jsonl(work.failures_file('generate', 0, 1))
    assert [f['what'] for f in failures] == ['category 2 (bat)'] and 'traceback' in failures[0]
    assert sorted(read_manifest(work)) == ['cat', 'mug']


def test_generate_options_are_checked():
    with pytest.raises(ConfigError, match='multiples of 8'):
        GenerateOptions(height=100)
    with pytest.raises(ConfigError, match='>= 1'):
        GenerateOptions(batch_size=0)


def test_ingest_own_images_with_corrupt_and_unknown_files(tmp_path):
    work = WorkDir(tmp_path / 'work')
    vocab = open_vocabulary(work, write_category_list(tmp_path / 'cats.txt', ['red mug', 'bat_(animal)']))
    root = tmp_path / 'photos'
    write_object_folders(root, ['red_mug', 'bat_(animal)'], 2)
    (root / 'red_mug' / 'broken.jpg').write_bytes(b'not a jpeg')
    (root / 'red_mug' / 'notes.txt').write_text('ignored: not an image')
    summary = ingest_images(work, vocab, root, source='own')
    assert summary.done == 4 and [f['what'] for f in summary.failures] == [f'image {root}/red_mug/broken.jpg']
    assert 'not a readable image' in summary.failures[0]['error']
    records = read_category_manifest(work, 'red_mug')
    assert [r.stem for r in records] == ['own_img00', 'own_img01'] and records[0].source == 'own'
    assert ingest_images(work, vocab, root, source='own').done == 0  # nothing is added twice
    (root / 'sofa').mkdir()
    with pytest.raises(VocabularyError, match=r"folders \['sofa'\].*match no category"):
        ingest_images(work, vocab, root)
    assert ingest_images(work, vocab, root, skip_unknown_folders=True, copy=True).done == 4  # as retrieved
    assert (work.root / 'images' / 'red_mug' / 'retrieved_img00.png').is_file()
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ingest_images(work, vocab, tmp_path / 'missing')
    with pytest.raises(ConfigError, match='source'):
        ingest_images(work, vocab, root, source='generated')


def _ingested_work(tmp_path, names=('mug', 'AC/DC_adapter', 'teddy_bear'), per_category=3):
    work = WorkDir(tmp_path / 'work')
    vocab = open_vocabulary(work, write_category_list(tmp_path / 'cats.txt', list(names)))
    write_object_folders(tmp_path / 'photos', [c.safe_name for c in vocab], per_category)
    ingest_images(work, vocab, tmp_path / 'photos', source='own')
    return work, vocab


def test_segment_score_filter_inspect(tmp_path, tiny, scorer):
    work, vocab = _ingested_work(tmp_path)
    segmenters = [build_segmenter('grabcut'), build_segmenter(dict(type='clipseg', model=str(tiny.clipseg)))]
    summary = segment_images(work, vocab, segmenters, batch_size=2)
    assert (summary.done, summary.ok) == (18, True)
    record = read_category_manifest(work, 'AC_DC_adapter')[0]
    image = cv2.cvtColor(cv2.imread(record.image), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(work.mask_path('grabcut', 'AC_DC_adapter', record.stem)), cv2.IMREAD_GRAYSCALE)
    truth = object_photo(100, (96, 96), textured=True, shape='rectangle')[1]  # write_object_folders' 1st
    assert mask.shape == image.shape[:2] and iou(mask > 128, truth) > 0.9

    summary = score_masks(work, vocab, scorer, ScoreOptions(batch_size=4))
    assert (summary.done, summary.ok) == (18, True)
    rows = {r['key']: r for r in read_jsonl(work.score_file('grabcut', 'AC_DC_adapter'))}
    composite, area = composite_on_white(image, mask)
    assert (composite[mask <= 128] == 255).all()
    assert rows[record.key]['area'] == pytest.approx(area, abs=1e-6)
    expected = float(scorer.score([composite], 'a photo of AC/DC adapter')[0])
    assert rows[record.key]['score'] == pytest.approx(expected, abs=1e-3)
    assert score_masks(work, vocab, scorer).done == 0  # everything is scored already

    from pool_builder.filter import build_pool

    built = build_pool(work, vocab, FilterRule(min_clip=-100.0, min_area=0.01, max_area=0.99))
    index = PoolIndex.load(built.index_path)
    assert built.kept == len(index) == 9 and set(index.segmenters) <= {'grabcut', 'clipseg'}
    report = inspect_pool(built.index_path, tmp_path / 'report', vocab, min_instances=4)
    assert report.flagged == [1, 2, 3] and report.unreadable == 0
    sheet = cv2.imread(str(report.contact_sheets[2]))
    assert sheet.shape[0] >= 96 and sheet.shape[1] == 3 * 96
    text = report.report.read_text()
    assert '| 2 | AC/DC_adapter | 3 |' in text and 'LOW' in text
    summary = json.loads(report.summary.read_text())
    assert summary['instances'] == 9 and summary['per_category'][0]['contact_sheet'] == 'contact_sheets/1.png'


def test_inspect_counts_unreadable_crops(tmp_path, scorer):
    work, vocab = _ingested_work(tmp_path, names=('mug',), per_category=2)
    segment_images(work, vocab, [build_segmenter('grabcut')])
    score_masks(work, vocab, scorer)
    from pool_builder.filter import build_pool

    built = build_pool(work, vocab, FilterRule(min_clip=-100.0, min_area=0.01))
    index = PoolIndex.load(built.index_path)
    index.path(0).write_bytes(b'corrupt')
    report = inspect_pool(built.index_path, tmp_path / 'report')
    assert report.unreadable == 1 and report.flagged == [1]


def test_shards_split_categories_disjointly_and_cover_all(tmp_path):
    work, vocab = _ingested_work(tmp_path, names=('a', 'b', 'c', 'd', 'e'), per_category=1)
    grabcut = [build_segmenter('grabcut')]
    first = segment_images(work, vocab, grabcut, shard=Shard(0, 2))
    second = segment_images(work, vocab, grabcut, shard=Shard(1, 2))
    assert (first.done, second.done) == (3, 2)
    assert sorted(p.parent.name for p in (work.root / 'masks' / 'grabcut').rglob('*.png')) == list('abcde')
    assert work.done_marker('segment', 1, 2).is_file()


@pytest.mark.parametrize('spec, environ, expected', [
    (None, {}, (0, 1, 0)),
    ('2/4', {'LOCAL_RANK': '1'}, (2, 4, 1)),
    (None, {'RANK': '3', 'WORLD_SIZE': '8', 'LOCAL_RANK': '3'}, (3, 8, 3)),
    (None, {'SLURM_PROCID': '5', 'SLURM_NTASKS': '6', 'SLURM_LOCALID': '1'}, (5, 6, 1)),
])
def test_resolve_shard(spec, environ, expected):
    shard = resolve_shard(spec, environ)
    assert (shard.rank, shard.world_size, shard.local_rank) == expected


@pytest.mark.parametrize('spec, environ, message', [
    ('4/4', {}, 'need 0 <= rank < world size'), ('x', {}, 'INDEX/COUNT'),
    (None, {'RANK': 'a', 'WORLD_SIZE': '2'}, 'RANK'),
])
def test_bad_shards(spec, environ, message):
    with pytest.raises(ConfigError, match=message):
        resolve_shard(spec, environ)


def test_clip_preprocessing_matches_torchvision_resize_and_center_crop(scorer):
    """X-Paste scores with torchvision Resize(S, bicubic) + CenterCrop(S) on float tensors: the long
    side is int(S * long / short) (45x67 at S=32: 47, not round(47.6) = 48), the crop offset
    int(round(excess / 2)) and the bicubic overshoot is not clamped."""
    from torchvision import transforms

    size = scorer.size[0]
    mean, std = scorer.mean.view(3).tolist(), scorer.std.view(3).tolist()
    reference = transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
        transforms.CenterCrop(size), transforms.Normalize(mean, std)])
    rng = np.random.default_rng(0)
    for height, width in ((45, 67), (67, 45), (2 * size, 2 * size)):
        image = (rng.random((height, width, 3)) < 0.5).astype(np.uint8) * 255  # sharp edges overshoot
        expected = reference(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        ours = scorer.preprocess([image])[0]
        assert ours.shape == (3, size, size)
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    black_below = (torch.tensor(0.0) - scorer.mean.view(3)) / scorer.std.view(3)
    assert (ours < black_below.view(3, 1, 1) - 1e-3).any()  # undershoot below black is kept
