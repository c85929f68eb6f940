"""pool_builder command line: the ``run`` command with a config file, the index tools, and the clear
errors (exit status 2 and a message naming the input) on bad input."""
import json

import pytest
from pool_helpers import (
    write_category_list,
    write_object_folders,
)

from pool_builder import cli
from pool_builder.pipeline import load_run_config
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
     ['ingest', '--vocab', '{t}/cats.json', '--image-root', '{t}'], 'cats.json: category #0'),
    (lambda p: (p / 'cats.txt').write_text('mug\n'),
     ['ingest', '--vocab', '{t}/cats.txt', '--image-root', '{t}/missing'], 'missing does not exist'),
    (lambda p: (p / 'cats.txt').write_text('mug\n'),
     ['segment', '--vocab', '{t}/cats.txt', '--segmenter', 'u2net'], "unknown segmenter 'u2net'"),
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
