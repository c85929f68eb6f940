"""tools/analysis_tools/gpu_check.py: the CPU smoke run of every phase, refusals with their fixes,
phase isolation with hard time limits, and the phase/limit selection."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))  # gpu_phases lives in tools/
from gpu_phases import requirements  # noqa: E402
from gpu_phases.cli import main  # noqa: E402
from gpu_phases.context import Settings  # noqa: E402
from gpu_phases.phases import BY_NAME, parse_limits, select_phases  # noqa: E402
from gpu_phases.requirements import PhaseRefused  # noqa: E402
from gpu_phases.runner import run_checks  # noqa: E402

CPU_PHASES = ['mmcv_ops', 'train_r50_fp32', 'train_swinl_fp32', 'dataloader', 'generate', 'segment', 'score',
              'inference']


def _figures(report: dict) -> dict[tuple[str, str], object]:
    return {(r['phase'], r['figure']): r['value'] for r in report['rows']}


def test_smoke_runs_every_cpu_phase(tmp_path, capsys):
    out = tmp_path / 'report.json'
    code = main(['--smoke', '--in-process', '--work-dir', str(tmp_path / 'work'), '--out', str(out)])
    report = json.loads(out.read_text())
    statuses = {p['phase']: (p['status'], p['message']) for p in report['phases']}
    assert statuses == {name: ('ok', '') for name in CPU_PHASES}
    assert code == 0
    figures = _figures(report)
    assert figures['mmcv_ops', 'nms equal to CPU'] == 'yes'
    assert figures['mmcv_ops', 'CPU ops equal to torchvision'] == 'yes'
    for phase in ('train_r50_fp32', 'train_swinl_fp32'):
        assert figures[phase, 'iterations/s'] > 0
        assert figures[phase, 'peak memory'] > 0
        assert figures[phase, 'loss finite'] == 'yes'
        assert figures[phase, 'EMA updated'] == 'yes'
    assert figures['dataloader', 'images/s, 0 workers'] > 0
    assert figures['dataloader', 'images/s, 2 workers'] > 0
    assert figures['generate', 'images/s'] > 0
    assert figures['segment', 'clipseg images/s'] > 0 and figures['segment', 'birefnet images/s'] > 0
    assert figures['score', 'images/s'] > 0
    assert figures['inference', 'images/s'] > 0
    assert all(r['device'].startswith('CPU') for r in report['rows'])
    assert report['meta']['smoke'] is True and report['meta']['torch'] == torch.__version__
    printed = capsys.readouterr().out
    assert 'phase' in printed and 'figure' in printed and 'train_r50_fp32' in printed and str(out) in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusals of a machine without CUDA')
def test_phases_refuse_without_cuda(tmp_path):
    out = tmp_path / 'report.json'
    code = main(['--device', 'cuda', '--phases', 'mmcv_ops', 'train_r50_amp', 'generate', 'score',
                 '--in-process',                 '--work-dir', str(tmp_path), '--out', str(out)])
    phases = json.loads(out.read_text())['phases']
    assert code == 2
    assert [p['status'] for p in phases] == ['refused'] * 4
    assert all('sees no CUDA GPU' in p['message'] and 'Fix:' in p['message'] for p in phases)


def test_amp_phase_refuses_on_cpu(tmp_path):
    report = run_checks(Settings.smoke_defaults(work_dir=str(tmp_path)), [BY_NAME['train_r50_amp']],
                        in_process=True, log=lambda _: None)
    (status,) = report.phases
    assert status.status == 'refused' and 'AMP training needs a CUDA device' in status.message
    assert report.exit_code() == 2


def test_mmcv_without_cuda_ops_names_the_fix(monkeypatch):
    import mmcv.ops
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: 'not available')
    fix = r'built without CUDA ops.*pip uninstall -y mmcv && bash tools/install.sh'
    with pytest.raises(PhaseRefused, match=fix):
        requirements.require_mmcv_ops('cuda')


def test_arch_mismatches_name_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda *_: (9, 0))
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *_: 'NVIDIA H200')
    monkeypatch.setattr(torch.cuda, 'get_arch_list', lambda: ['sm_70', 'sm_80'])
    with pytest.raises(PhaseRefused, match=r'NVIDIA H200 is sm_90, but torch .* was built for sm_70 sm_80'):
        requirements.require_device('cuda')
    monkeypatch.setattr(torch.cuda, 'get_arch_list', lambda: ['sm_80', 'compute_80'])
    requirements.require_device('cuda')  # PTX for an older architecture runs (JIT-compiled)

    import mmcv.ops
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: torch.version.cuda or '12.8')

    def no_kernel(device):
        raise RuntimeError('CUDA error: no kernel image is available for execution on the device')

    monkeypatch.setattr(requirements, '_probe_roi_align', no_kernel)
    fix = r'not compiled for this GPU \(sm_90\).*TORCH_CUDA_ARCH_LIST="9.0" bash tools/install.sh'
    with pytest.raises(PhaseRefused, match=fix):
        requirements.require_mmcv_ops('cuda')


def test_isolated_phases_report_and_time_out(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    settings = Settings.smoke_defaults(work_dir=str(tmp_path))
    report = run_checks(settings, [BY_NAME['mmcv_ops'], BY_NAME['dataloader']], limits={'dataloader': 0.5},
                        log=lambda _: None)
    ops, loader = report.phases
    assert ops.status == 'ok' and {r.figure for r in report.rows} >= {'nms equal to CPU', 'RoIAlign time'}
    assert loader.status == 'timeout' and '--time-limit dataloader=SECONDS' in loader.message
    assert loader.seconds < 10
    assert report.exit_code() == 1


def test_phase_selection_and_limits():
    assert [p.name for p in select_phases(None, 'cpu')] == CPU_PHASES
    assert len(select_phases(None, 'cuda')) == len(CPU_PHASES) + 2
    assert [p.name for p in select_phases(['score', 'train'], 'cpu')] == [
        'train_r50_fp32', 'train_r50_amp', 'train_swinl_fp32', 'train_swinl_amp', 'score']
    with pytest.raises(ValueError, match="unknown phase 'trian'"):
        select_phases(['trian'], 'cpu')
    default, limits = parse_limits(['100', 'pool=50', 'inference=20'])
    assert default == 100 and limits == {'generate': 50, 'segment': 50, 'score': 50, 'inference': 20}
    with pytest.raises(ValueError, match='PHASE=SECONDS'):
        parse_limits(['generate=fast'])


def test_sd15_shaped_components_have_sd15_sizes():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from gpu_phases.shaped_models import SD15
    from transformers import CLIPTextConfig, CLIPTextModel
    with torch.device('meta'):  # shapes only, no memory
        parts = (UNet2DConditionModel(**SD15['unet']), AutoencoderKL(**SD15['vae']),
                 CLIPTextModel(CLIPTextConfig(**SD15['text'])))
    millions = [round(sum(p.numel() for p in part.parameters()) / 1e6, 2) for part in parts]
    assert millions == [859.52, 83.65, 123.06]  # SD-1.5's unet, vae, text_encoder


def test_clip_tokenizer_is_openai_clip_bpe(tmp_path):
    import open_clip
    from gpu_phases.shaped_models import save_clip_tokenizer
    tokenizer = save_clip_tokenizer(tmp_path)
    reference = open_clip.get_tokenizer('ViT-L-14')
    for text in ('a photo of a single mug', 'a photo of a single crème brûlée, AC/DC_adapter'):
        assert tokenizer(text).input_ids == [i for i in reference([text])[0].tolist() if i]
