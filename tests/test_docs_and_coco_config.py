"""The documentation and model index agree with the code, and the COCO X-Paste config works.

- ``model-index.yml`` / ``configs/xpaste/metafile.yml``: every listed config exists, every config in
  ``configs/xpaste/`` is listed, and the published numbers equal those of ``docs/model_zoo.md``.
- ``docs/*.md``: every script/config path exists, and every command in a ``bash`` block uses flags that
  its script (``tools/*.py``, the ``tools/*.sh`` launchers, ``xpaste-pool <stage>``) really accepts.
- The COCO config: its model builds and trains without any category statistics (federated loss off =
  sigmoid cross-entropy over all 80 classes) and predicts at most 100 detections; with a COCO-format
  dataset whose category ids have gaps, CocoDataset, XPasteCopyPaste and CocoMetric agree on labels.
- The custom-dataset config of the user guide loads and builds a model with its own class count.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import runpy
import shlex
import sys
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from mmdet.registry import DATASETS, METRICS, MODELS, TRANSFORMS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.structures import InstanceData

import xpaste_mm  # noqa: F401  (registers the modules)
from xpaste_mm.datasets import PoolIndex, compute_category_stats, save_category_stats

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / 'docs').glob('*.md'))
COCO_CONFIG = 'configs/xpaste/centernet2_r50-in21k_fpn_8xb8-180k-ema_coco-xpaste.py'
register_all_modules(init_default_scope=True)


# ------------------------------------------------------------------ model index
def _metafile_models() -> list[dict]:
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    models = []
    for imported in index['Import']:
        path = REPO / imported
        assert path.is_file(), f'model-index.yml imports missing {imported}'
        meta = yaml.safe_load(path.read_text())
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            models.append(model)
    return models


def test_model_index_lists_every_xpaste_config_and_only_existing_ones():
    models = _metafile_models()
    names = [m['Name'] for m in models]
    assert len(names) == len(set(names)), 'duplicate model names'
    listed = [m['Config'] for m in models]
    for config in listed:
        assert (REPO / config).is_file(), f'metafile lists missing config {config}'
        assert Path(config).stem == next(m['Name'] for m in models if m['Config'] == config)
    on_disk = sorted(str(p.relative_to(REPO)) for p in (REPO / 'configs/xpaste').glob('*.py'))
    assert sorted(listed) == on_disk, 'configs/xpaste/ and configs/xpaste/metafile.yml disagree'


def test_metafile_schedule_metadata_matches_the_configs():
    for model in _metafile_models():
        cfg = Config.fromfile(str(REPO / model['Config']))
        meta = model['Metadata']
        if 'Epochs' in meta:  # epoch-based recipes (MMDetection's Mask R-CNN)
            assert meta['Epochs'] == cfg.train_cfg.max_epochs, model['Name']
        else:
            assert meta['Iterations'] == cfg.train_cfg.max_iters, model['Name']
        gpus = re.search(r'_(\d+)xb(\d+)-', model['Name'])
        per_gpu = cfg.train_dataloader.batch_size
        assert meta['Batch Size'] == (int(gpus[1]) * per_gpu if gpus else per_gpu), model['Name']
        if gpus:
            assert int(gpus[2]) == per_gpu, model['Name']


def _published(model: dict) -> tuple[float, float, float, float] | None:
    if 'Results' not in model:
        return None
    metrics = {}
    for result in model['Results']:
        assert result['Dataset'] == 'LVIS v1'
        metrics.update(result['Metrics'])
    return metrics['box AP'], metrics['mask AP'], metrics['box AP_r'], metrics['mask AP_r']


def test_published_results_match_the_model_zoo_table():
    table = (REPO / 'docs/model_zoo.md').read_text()
    rows = [line for line in table.splitlines() if line.startswith('| ') and '`centernet2_' in line]
    with_results = [m for m in _metafile_models() if _published(m)]
    assert len(with_results) == 5  # R50 baseline / X-Paste, Swin-L baseline / paper row / README row
    for model in with_results:
        cells = next((r for r in rows if f'`{Path(model["Config"]).name}`' in r.split('|')[-2]), None)
        assert cells is not None, f'no model-zoo row points at {model["Config"]}'
        numbers = tuple(float(x) for x in re.findall(r'\|\s*(\d+\.\d)\s*(?=\|)', cells))
        assert numbers == _published(model), model['Name']
    # The tiny/synthetic and unpublished configs carry no results.
    assert not _published(next(m for m in _metafile_models() if 'coco' in m['Name']))


# ------------------------------------------------------------------ docs: paths and commands
def _doc_text() -> str:
    assert DOCS, 'docs/*.md missing'
    return '\n'.join(p.read_text() for p in DOCS)


def test_every_repository_path_in_the_docs_exists():
    pattern = r'\b((?:configs|tools|xpaste_mm|pool_builder)/[\w./-]*\.(?:py|sh|yml))'
    paths = set(re.findall(pattern, _doc_text()))
    paths -= {'configs/my_data/centernet2_r50-in21k_fpn_8xb8-180k-ema_my-data-xpaste.py'}  # the user's file
    assert len(paths) > 15
    missing = sorted(p for p in paths if not (REPO / p).is_file())
    assert not missing, f'docs mention missing files: {missing}'


def _bash_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', _doc_text(), flags=re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=';&|')
            lexer.whitespace_split = True
            tokens: list[str] = []
            for token in [*lexer, ';']:  # split at ; && || |
                if token.strip(';&|'):
                    tokens.append(token)
                    continue
                while tokens and re.fullmatch(r'[A-Z_]+=.*', tokens[0]):  # VAR=value prefixes
                    tokens.pop(0)
                if tokens:
                    commands.append(tokens)
                tokens = []
    return commands


@cache
def _help(script: str, stage: str | None = None) -> str:
    """``--help`` output of a repository script (run in-process) or of an ``xpaste-pool`` stage."""
    out = io.StringIO()
    argv = sys.argv
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            if stage is not None:
                from pool_builder.cli import main
                main([stage, '--help'])
            else:
                sys.argv = [script, '--help']
                runpy.run_path(str(REPO / script), run_name='__main__')
    finally:
        sys.argv = argv
    return out.getvalue()


LAUNCHERS = {'tools/dist_train.sh': 'tools/train.py', 'tools/dist_test.sh': 'tools/test.py',
             'tools/slurm_train.sh': 'tools/train.py', 'tools/install.sh': None}


def _tool_of(tokens: list[str]) -> tuple[str | None, str | None, list[str]] | None:
    """(script, pool stage, arguments) of a command that runs our code, else None."""
    if tokens[0] == 'xpaste-pool':
        return None, tokens[1], tokens[2:]
    if 'pool_builder' in tokens and tokens[tokens.index('pool_builder') - 1] == '-m':
        at = tokens.index('pool_builder')
        return None, tokens[at + 1], tokens[at + 2:]
    for at, token in enumerate(tokens):
        if token in LAUNCHERS:
            return LAUNCHERS[token], None, tokens[at + 1:]
        if token.startswith('tools/') and token.endswith('.py'):
            return token, None, tokens[at + 1:]
    return None


def test_every_documented_command_uses_existing_scripts_and_flags():
    checked = 0
    for tokens in _bash_commands():
        tool = _tool_of(tokens)
        if tool is None:
            continue
        script, stage, args = tool
        flags = {a.split('=')[0] for a in args if re.fullmatch(r'--?[a-zA-Z][\w-]*(=.*)?', a)}
        if stage is not None:
            text = _help('xpaste-pool', stage)
        elif script is None:
            text = ''  # tools/install.sh takes no options
        else:
            assert (REPO / script).is_file(), f'{" ".join(tokens)}: {script} does not exist'
            text = _help(script)
        unknown = sorted(f for f in flags if not re.search(rf'(?<![\w-]){re.escape(f)}(?![\w-])', text))
        assert not unknown, f'{" ".join(tokens)}: unknown flag(s) {unknown}'
        checked += 1
    assert checked >= 30  # the guide and the model zoo document many commands


def _cfg_options(args: list[str]) -> dict[str, str]:
    """``key=value`` pairs after ``--cfg-options`` (up to the next flag)."""
    if '--cfg-options' not in args:
        return {}
    pairs = {}
    for arg in args[args.index('--cfg-options') + 1:]:
        if arg.startswith('-'):
            break
        key, value = arg.split('=', 1)
        pairs[key] = value
    return pairs


def _init_args(type_name: str | None) -> set[str]:
    """Constructor argument names of a registered mmdet type (empty when unknown)."""
    for registry in (TRANSFORMS, MODELS, DATASETS, METRICS):
        cls = registry.get(type_name) if type_name else None
        if cls is not None:
            return set(inspect.signature(cls.__init__).parameters)
    return set()


def test_documented_cfg_options_address_existing_settings():
    from pool_builder.pipeline import load_run_config

    checked = 0
    for tokens in _bash_commands():
        tool = _tool_of(tokens)
        options = _cfg_options(tool[2]) if tool else {}
        config = next((t for t in tokens if t.startswith('configs/') and t.endswith('.py')), None)
        if not options or config is None:
            continue
        if tool[1] == 'run':  # pool_builder run configs reject unknown sections and keys
            load_run_config(REPO / config, options)
        else:
            cfg = Config.fromfile(str(REPO / config))
            for key in options:
                node = cfg
                *parents, last = key.split('.')
                for part in parents:
                    node = node[int(part)] if isinstance(node, list) else node[part]
                known = last in node or last in _init_args(node.get('type'))
                assert known, f'{config}: --cfg-options {key} is neither in the config nor an argument of ' \
                              f'{node.get("type")}'
        checked += 1
    assert checked >= 5


# ------------------------------------------------------------------ the COCO config
def _coco_model_cfg() -> Config:
    cfg = Config.fromfile(str(REPO / COCO_CONFIG))
    cfg.model.backbone.init_cfg = None
    cfg.model.train_cfg.rpn_proposal.max_per_img = 64  # fewer RoIs: the full-size heads are slow on CPU
    cfg.model.train_cfg.rcnn[0].sampler.num = 64
    cfg.model.test_cfg.rpn.max_per_img = 128
    return cfg


def test_coco_config_trains_without_category_stats_and_keeps_100_detections():
    cfg = _coco_model_cfg()
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'
    assert cfg.val_evaluator.type == 'CocoMetric' and cfg.val_evaluator.metric == ['bbox', 'segm']
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert [h.fc_cls.out_features for h in model.roi_head.bbox_head] == [81, 81, 81]
    size = 128
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                         scale_factor=(1., 1.)))
    masks = np.zeros((2, size, size), np.uint8)
    masks[0, 10:60, 20:90] = 1
    masks[1, 70:120, 30:80] = 1
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20., 10., 90., 60.], [30., 70., 80., 120.]]),
                                       labels=torch.tensor([0, 79]), masks=BitmapMasks(masks, size, size))
    image = torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values()) and 'loss_cls_stage2' in losses
    loss_cls = model.roi_head.bbox_head[0].loss_cls
    assert loss_cls._class_weights is None  # no statistics file was ever read
    logits, labels = torch.randn(6, 81), torch.tensor([0, 5, 79, 80, 80, 3])
    full_bce = F.binary_cross_entropy_with_logits(logits[:, :80], F.one_hot(labels, 81)[:, :80].float(),
                                                  reduction='sum') / 6
    torch.testing.assert_close(loss_cls(logits, labels), full_bce)  # every class, every RoI

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=False)
        result = model(**data, mode='predict')[0].pred_instances
    assert 0 < len(result) <= 100 and int(result.labels.max()) < 80


def _tiny_coco(root: Path) -> Path:
    """COCO-format train file: 3 categories with ids 3, 7, 42 (gaps), 4 images with polygons."""
    (root / 'images').mkdir(parents=True)
    categories = [dict(id=3, name='scratch'), dict(id=7, name='dent'), dict(id=42, name='rust spot')]
    images, annotations = [], []
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(root / 'images' / f'{i}.png'), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
        images.append(dict(id=i + 1, file_name=f'{i}.png', width=128, height=96))
        for k, cat in enumerate((3, 7, 42)[: 1 + i % 3]):
            x, y = 10 + 30 * k, 20
            annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, category_id=cat, iscrowd=0,
                                    bbox=[x, y, 25, 40], area=1000.0,
                                    segmentation=[[x, y, x + 25, y, x + 25, y + 40, x, y + 40]]))
    ann = root / 'train.json'
    ann.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return ann


def _tiny_pool(root: Path, category_ids) -> Path:
    root.mkdir(parents=True)
    records = []
    for cat in category_ids:
        alpha = np.zeros((40, 30), np.uint8)
        cv2.ellipse(alpha, (15, 20), (12, 17), 0, 0, 360, 255, -1)
        path = root / f'{cat}.png'
        cv2.imwrite(str(path), np.dstack([np.full((40, 30, 3), 200, np.uint8), alpha]))
        records.append(dict(category_id=cat, path=str(path), width=30, height=40))
    return PoolIndex.from_records(records, root).save(root / 'pool_index.npz')


def test_coco_config_labels_category_ids_with_gaps_consistently(tmp_path):
    ann = _tiny_coco(tmp_path / 'data')
    stats = save_category_stats(compute_category_stats(ann), tmp_path / 'category_stats.json')
    pool = _tiny_pool(tmp_path / 'pool', [7, 42])
    cfg = Config.fromfile(str(REPO / COCO_CONFIG))
    classes = ('scratch', 'dent', 'rust spot')
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.update(data_root=str(tmp_path / 'data'), ann_file='train.json',
                       data_prefix=dict(img='images/'), metainfo=dict(classes=classes),
                       filter_cfg=dict(filter_empty_gt=True, min_size=0))
    paste = next(t for t in dataset_cfg.pipeline if t['type'] == 'XPasteCopyPaste')
    assert (paste.pool_file, paste.stats_file) == (cfg.xpaste_pool_file, cfg.category_stats_file)
    paste.update(pool_file=str(pool), stats_file=str(stats))
    dataset = DATASETS.build(dataset_cfg)
    assert dataset.cat2label == {3: 0, 7: 1, 42: 2}
    transform = next(t for t in dataset.pipeline.transforms if type(t).__name__ == 'XPasteCopyPaste')
    assert transform.category_ids == [3, 7, 42]  # the same id -> label order as CocoDataset

    np.random.seed(0)
    pasted_labels, original_labels = set(), set()
    for _ in range(6):
        for i in range(len(dataset)):
            gt = dataset[i]['data_samples'].gt_instances
            pasted_labels |= set(gt.labels[gt.is_pasted].tolist())
            original_labels |= set(gt.labels[~gt.is_pasted].tolist())
    assert pasted_labels == {1, 2}  # pool ids 7 and 42
    assert original_labels == {0, 1, 2}

    # CocoMetric maps labels back to the ids with gaps: ground truth fed back as predictions scores 1.0.
    metric = METRICS.build(dict(cfg.val_evaluator, ann_file=str(ann)))
    metric.dataset_meta = dataset.metainfo
    coco = json.loads(ann.read_text())
    for image in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        boxes = torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                               a['bbox'][1] + a['bbox'][3]] for a in anns], dtype=torch.float32)
        masks = torch.zeros(len(anns), image['height'], image['width'], dtype=torch.bool)
        for m, box in zip(masks, boxes.int().tolist()):
            m[box[1]:box[3], box[0]:box[2]] = True
        pred = dict(bboxes=boxes, scores=torch.ones(len(anns)), masks=masks,
                    labels=torch.tensor([dataset.cat2label[a['category_id']] for a in anns]))
        metric.process({}, [dict(img_id=image['id'], ori_shape=(image['height'], image['width']),
                                 pred_instances=pred)])
    results = metric.evaluate(size=len(coco['images']))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


def test_user_guide_custom_dataset_config_builds_its_model(tmp_path):
    guide = (REPO / 'docs/user_guide.md').read_text()
    snippet = next(b for b in re.findall(r'```python\n(.*?)```', guide, flags=re.S) if '_base_' in b)
    configs = tmp_path / 'configs'
    (configs / 'my_data').mkdir(parents=True)
    for name in ('xpaste', '_base_'):
        (configs / name).symlink_to(REPO / 'configs' / name)
    (configs / 'my_data' / 'my_data_xpaste.py').write_text(snippet)
    cfg = Config.fromfile(str(configs / 'my_data' / 'my_data_xpaste.py'))
    assert cfg.train_dataloader.dataset.metainfo.classes == ('scratch', 'dent', 'rust spot')
    assert cfg.test_evaluator.type == 'CocoMetric' and cfg.test_evaluator.ann_file.endswith('val.json')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert [h.fc_cls.out_features for h in model.roi_head.bbox_head] == [4, 4, 4]
    assert model.roi_head.mask_head.num_classes == 3
