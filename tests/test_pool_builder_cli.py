"""pool_builder command line: the ``run`` command with a config file, the index tools, and the clear
errors (exit status 2 and a message naming the input) on bad input."""
import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from pool_helpers import (
    write_category_list,
    write_object_folders,
)

from pool_builder import cli
from pool_builder.options import (
    STAGE_OPTIONS,
    STAGE_ORDER,
    GenerateOptions,
    VocabularyOptions,
    options_from_config,
)
from pool_builder.pipeline import load_run_config
from pool_builder.stage import STAGES, stage_class
from xpaste_mm.datasets import PoolIndex, load_image_counts, load_size_prior


def _config(tmp_path, tiny, ann_file, body: str = '', categories=None):
    path = tmp_path / 'pool_config.py'
    path.write_text(f"""
work_dir = {str(tmp_path / 'work')!r}
device = 'cpu'
vocabulary = dict(file={str(ann_file)!r}, categories={categories!r})
generate = dict(model={str(tiny.stable_diffusion)!r}, images_per_category=2, batch_size=2,
                num_inference_steps=2, height=64, width=64)
ingest = dict(root={str(tmp_path / 'photos')!r}, source='own')
segment = dict(segmenters=['grabcut', dict(type='clipseg', model={str(tiny.clipseg)!r})], batch_size=4)
score = dict(model={str(tiny.open_clip)!r}, pretrained=None, batch_size=8)
filter = dict(min_clip=-100.0, min_area=0.01, max_area=0.99, workers=1, xpaste_json='pool/xpaste.json')
stats = dict(ann_file={str(ann_file)!r})
inspect = dict(min_instances=3)
{body}""")
    return path


def test_run_all_stages_from_one_config(tmp_path, tiny, synthetic_lvis, capsys):
    names = json.loads(synthetic_lvis.train_ann.read_text())['categories']
    write_object_folders(tmp_path / 'photos', [names[0]['name'], names[5]['name'].replace('/', '_')], 2)
    config = _config(tmp_path, tiny, synthetic_lvis.train_ann, categories=[1, 2, 6])
    status = cli.main(['run', str(config), '--cfg-options', 'generate.seed=3'])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert 'generate: 6 done' in out and 'ingest: 4 done' in out and 'segment: 20 done' in out
    work = tmp_path / 'work'
    index = PoolIndex.load(work / 'pool' / 'pool_index.npz')
    assert len(index) == 10 and set(index.category_ranges()) == {1, 2, 6}
    assert {r['source'] for r in index.records()} == {'generated', 'own'}
    exported = json.loads((work / 'pool' / 'xpaste.json').read_text())
    assert sorted(exported, key=int) == ['0', '1', '5']
    stats = load_size_prior(work / 'category_stats.json')
    assert stats.keys() == load_image_counts(synthetic_lvis.train_ann).keys()
    assert (work / 'report' / 'report.md').is_file()
    assert (work / 'report' / 'contact_sheets' / '6.png').is_file()
    manifest = work / 'manifest' / 'generated' / 'aerosol_can.jsonl'
    assert len({json.loads(line)['seed'] for line in manifest.open()}) == 2
    # Running again does no new work and keeps the same pool.
    argv = ['run', str(config), '--cfg-options', 'generate.seed=3', '--stages', 'generate', 'filter']
    assert cli.main(argv) == 0
    assert 'generate: 0 done, 6 already complete' in capsys.readouterr().out
    assert len(PoolIndex.load(work / 'pool' / 'pool_index.npz')) == 10


def test_index_export_and_import_through_the_cli(tmp_path, capsys):
    crops = tmp_path / 'pool' / 'images'
    records = []
    for cat_id in (1, 3):
        (crops / str(cat_id)).mkdir(parents=True)
        path = crops / str(cat_id) / '0.png'
        path.write_bytes(b'')
        records.append(dict(category_id=cat_id, path=str(path)))
    PoolIndex.from_records(records, root=tmp_path / 'pool').save(tmp_path / 'pool' / 'pool_index.npz')
    vocab = write_category_list(tmp_path / 'cats.txt', ['a', 'b', 'c'])
    assert cli.main(['export-xpaste', '--index', str(tmp_path / 'pool' / 'pool_index.npz'),
                     '--out', str(tmp_path / 'x.json'), '--vocab', str(vocab)]) == 0
    exported = json.loads((tmp_path / 'x.json').read_text())
    assert exported == {'0': [f'*{crops}/1/0.png'], '2': [f'*{crops}/3/0.png']}
    assert cli.main(['import-xpaste', '--json', str(tmp_path / 'x.json'), '--out',
                     str(tmp_path / 'back.npz'), '--vocab', str(vocab)]) == 0
    assert [r['category_id'] for r in PoolIndex.load(tmp_path / 'back.npz').records()] == [1, 3]


@pytest.mark.parametrize('write, argv, message', [
    (lambda p: (p / 'cats.json').write_text('{"categories": [{"name": "x"}]}'),
     ['ingest', '--vocab', '{t}/cats.json', '--root', '{t}'], 'cats.json: category #0'),
    (lambda p: (p / 'cats.txt').write_text('mug\n'),
     ['ingest', '--vocab', '{t}/cats.txt', '--root', '{t}/missing'], 'missing does not exist'),
    (lambda p: (p / 'cats.txt').write_text('mug\n'),
     ['segment', '--vocab', '{t}/cats.txt', '--segmenters', 'u2net'], "unknown segmenter 'u2net'"),
    (lambda p: (p / 'cats.txt').write_text('mug\n'),
     ['generate', '--vocab', '{t}/cats.txt', '--model', '{t}/no_model'], 'no model_index.json'),
    (lambda p: None, ['segment'], 'has no recorded vocabulary'),
    (lambda p: (p / 'cats.txt').write_text('mug\n'),
     ['segment', '--vocab', '{t}/cats.txt', '--shard', '3/2'], 'invalid shard 3/2'),
])
def test_bad_inputs_exit_2_with_a_clear_message(tmp_path, capsys, write, argv, message):
    write(tmp_path)
    argv = [a.replace('{t}', str(tmp_path)) for a in argv]
    argv[1:1] = ['--work-dir', str(tmp_path / 'work'), '--device', 'cpu']
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_run_configs(tmp_path, tiny, synthetic_lvis, capsys):
    config = _config(tmp_path, tiny, synthetic_lvis.train_ann, 'segmnet = dict(segmenters=["grabcut"])')
    assert cli.main(['run', str(config)]) == 2
    assert "unknown section(s) ['segmnet']" in capsys.readouterr().err
    config = _config(tmp_path, tiny, synthetic_lvis.train_ann, 'filter = dict(min_clipp=3)')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['min_clipp'\] in \"filter\""):
        load_run_config(config)
    assert cli.main(['run', str(tmp_path / 'nope.py')]) == 2
    assert 'nope.py does not exist' in capsys.readouterr().err


# ------------------------------------------------------------------ one definition of every option
def _subparser(stage: str):
    parser = cli.build_parser()
    return next(a for a in parser._actions if a.dest == 'command').choices[stage]


@pytest.mark.parametrize('stage', STAGE_ORDER)
def test_stage_flags_are_the_config_keys_with_the_options_defaults(stage):
    actions = {a.dest: a for a in _subparser(stage)._actions}
    for spec in fields(STAGE_OPTIONS[stage]):
        action = actions[f'{stage}.{spec.name}']
        assert action.option_strings[0] == '--' + spec.name.replace('_', '-')
        shown = ' '.join(map(str, spec.default)) if isinstance(spec.default, tuple) else spec.default
        assert f'(config {stage}.{spec.name}; default: {shown})' in action.help
    # A flag that is not given does not enter the config: the default comes from the options class.
    args = cli.build_parser().parse_args([stage, '--work-dir', 'w'])
    assert cli.config_from_flags(args)[stage] == {}
    cls = stage_class(stage)
    assert cls.name == stage and cls.options_cls is STAGE_OPTIONS[stage] and STAGES.get(stage) is cls


def test_stage_command_and_config_give_the_same_options(tmp_path):
    argv = ['generate', '--work-dir', str(tmp_path), '--vocab', 'cats.txt', '--categories', '3,1', '5',
            '--images-per-category', '6', '--num-inference-steps', '2', '--no-safety-checker',
            '--templates', 'a {name}', 'two {name}']
    config = cli.config_from_flags(cli.build_parser().parse_args(argv))
    assert config['generate'] == dict(images_per_category=6, num_inference_steps=2, safety_checker=False)
    assert config['vocabulary'] == dict(file='cats.txt', categories=[3, 1, 5],
                                        templates=['a {name}', 'two {name}'])
    generate = options_from_config(GenerateOptions, config['generate'], 'generate')
    assert generate == GenerateOptions(images_per_category=6, num_inference_steps=2, safety_checker=False)
    vocabulary = options_from_config(VocabularyOptions, config['vocabulary'], 'vocabulary')
    assert vocabulary.categories == (3, 1, 5) and vocabulary.templates == ('a {name}', 'two {name}')


def test_output_paths_resolve_against_the_work_dir_from_a_config_and_from_flags(tmp_path, synthetic_lvis,
                                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    ann = str(synthetic_lvis.train_ann)
    assert cli.main(['stats', '--work-dir', 'by_flags', '--ann-file', ann, '--out', 'meta/stats.json']) == 0
    config = tmp_path / 'stats.py'
    config.write_text(f"work_dir = 'by_config'\nstats = dict(ann_file={ann!r}, out='meta/stats.json')\n")
    assert cli.main(['run', str(config), '--stages', 'stats']) == 0
    written = [tmp_path / name / 'meta' / 'stats.json' for name in ('by_flags', 'by_config')]
    assert written[0].read_bytes() == written[1].read_bytes() != b''
    # Without a work dir, stats and inspect write relative to the current directory.
    assert cli.main(['stats', '--ann-file', ann, '--out', 'plain.json']) == 0
    assert (tmp_path / 'plain.json').read_bytes() == written[0].read_bytes()


def test_import_and_argument_parsing_load_neither_torch_nor_mmdet(repo_root):
    code = ('import sys, pool_builder, pool_builder.cli, pool_builder.pipeline\n'
            'parser = pool_builder.cli.build_parser()\n'
            'for stage in pool_builder.cli.STAGE_ORDER:\n'
            '    parser.parse_args([stage, "--work-dir", "w"])\n'
            'parser.parse_args(["run", "c.py", "--cfg-options", "a=1"])\n'
            'print(sorted(m for m in ("torch", "mmdet", "mmcv", "xpaste_mm", "cv2") if m in sys.modules))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=repo_root, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(repo_root)), check=True).stdout
    assert out.strip() == '[]'


def test_fixtures_live_in_pool_builder_testing(repo_root):
    from pool_builder import testing

    assert callable(testing.build_tiny_models)
    assert Path(testing.__file__).parent == repo_root / 'pool_builder' / 'testing'
    assert not list((repo_root / 'pool_builder').glob('tiny_*.py'))  # no fixtures in the library


def test_a_failing_command_does_not_create_a_mistyped_work_dir(tmp_path, capsys):
    assert cli.main(['segment', '--work-dir', str(tmp_path / 'typo'), '--device', 'cpu']) == 2
    assert 'has no recorded vocabulary' in capsys.readouterr().err and not (tmp_path / 'typo').exists()
