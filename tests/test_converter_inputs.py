"""Converter scripts on bad input: one clear message and exit 2 (never a traceback), the default config
found from any directory and checked before the checkpoint is loaded, the config named in the report."""
import fractions
import importlib.util

import pytest
import torch

from xpaste_mm.converters import InputError, load_source_checkpoint
from xpaste_mm.converters import common as converters_common

MISSING_MODULE_PICKLE = b'\x80\x02cnonexistent_module_xyz\nThing\nq\x00)\x81q\x01.'
RANDOM_BINARY = bytes(range(255, -1, -1)) * 4
TINY = 'configs/xpaste/centernet2_r18-tiny_fpn_40i_synthetic-lvis.py'


def _script(repo_root, name):
    path = repo_root / 'tools' / 'model_converters' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name, content, trust, message', [
    ('random.pth', RANDOM_BINARY, False, 'is not a checkpoint'),
    ('random.pkl', RANDOM_BINARY, True, 'is not a checkpoint'),
    ('empty.pth', b'', False, 'is not a checkpoint: it is empty'),
    ('missing.pth', None, False, 'does not exist'),
    ('module.pkl', MISSING_MODULE_PICKLE, True, "cannot be unpickled .*nonexistent_module_xyz"),
    ('truncated.pkl', b'\x80\x04\x95garbage', True, 'cannot be unpickled'),
    ('module.pth', MISSING_MODULE_PICKLE, True, "cannot be unpickled .*nonexistent_module_xyz"),
])
def test_unreadable_sources_get_one_clear_message(tmp_path, name, content, trust, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_source_checkpoint(path, trust_pickle=trust)
    assert 'pickle holding Python objects' not in str(info.value) and name in str(info.value)


def test_objects_beyond_tensors_need_trust_and_truncated_zip_is_named(tmp_path):
    path = tmp_path / 'objects.pth'
    torch.save({'w': torch.ones(2), 'frac': fractions.Fraction(1, 3)}, path)
    with pytest.raises(InputError, match=r'objects.pth holds Python objects .*Fraction.*--trust-pickle'):
        load_source_checkpoint(path)
    assert load_source_checkpoint(path, trust_pickle=True)['frac'] == fractions.Fraction(1, 3)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match='objects.pth: not a readable PyTorch checkpoint, the file is trunc'):
        load_source_checkpoint(path, trust_pickle=True)


def _backbone_main(argv):
    from xpaste_mm.converters import RESNET50_CFG, convert_miil_resnet50
    from xpaste_mm.converters.cli import run_backbone_conversion
    return run_backbone_conversion('MIIL ResNet-50', convert_miil_resnet50, RESNET50_CFG, argv)


@pytest.mark.parametrize('script', ['xpaste_to_mmdet', 'backbone'])
def test_scripts_exit_2_without_traceback(tmp_path, repo_root, capsys, script):
    main = _script(repo_root, script).main if script != 'backbone' else _backbone_main
    (tmp_path / 'random.pth').write_bytes(RANDOM_BINARY)
    cases = [('random.pth', 'random.pth is not a checkpoint'), ('nope.pth', 'nope.pth does not exist')]
    for name, message in cases:
        code = main([str(tmp_path / name), str(tmp_path / 'out.pth')])
        err = capsys.readouterr().err
        assert code == 2 and message in err and 'Traceback' not in err
    assert not (tmp_path / 'out.pth').exists()


def test_config_is_checked_before_the_checkpoint_is_loaded(tmp_path, repo_root, capsys, monkeypatch):
    script = _script(repo_root, 'xpaste_to_mmdet')
    torch.save({'model': {}}, tmp_path / 'ckpt.pth')

    def no_loading(*args, **kwargs):
        raise AssertionError('the checkpoint was loaded before the config was checked')

    monkeypatch.setattr(converters_common.torch, 'load', no_loading)
    code = script.main([str(tmp_path / 'ckpt.pth'), str(tmp_path / 'out.pth'), '--config', 'missing.py'])
    err = capsys.readouterr().err
    assert code == 2 and 'config missing.py does not exist' in err and 'Traceback' not in err
    (tmp_path / 'broken.py').write_text('model = dict(type="NoSuchDetector")\n')
    code = script.main([str(tmp_path / 'ckpt.pth'), str(tmp_path / 'out.pth'), '--config',
                        str(tmp_path / 'broken.py')])
    err = capsys.readouterr().err
    assert code == 2 and 'broken.py: its model does not build' in err


def test_default_config_is_found_from_another_directory_and_named(tmp_path, repo_root, capsys, monkeypatch):
    script = _script(repo_root, 'xpaste_to_mmdet')
    assert script.DEFAULT_CONFIG.is_file()
    monkeypatch.chdir(tmp_path)
    seen = []

    def tiny_state(config):  # the R50 LVIS model takes long to build; record what the script asked for
        seen.append(config)
        from xpaste_mm.converters.xpaste_detectron2 import build_model_state
        return build_model_state(repo_root / TINY)

    monkeypatch.setattr(script, 'build_model_state', tiny_state)
    torch.save({'model': {}}, tmp_path / 'empty.pth')
    code = script.main([str(tmp_path / 'empty.pth'), str(tmp_path / 'out.pth')])
    captured = capsys.readouterr()
    assert seen == [script.DEFAULT_CONFIG.resolve()]
    assert code == 1 and 'MISSING target keys' in captured.out
    assert f'built from config {script.DEFAULT_CONFIG.resolve()}' in captured.out
