"""tools/gpu_check.sh --dry_run: the GPU check's whole sequence on the CPU at tiny sizes, so that
the script cannot rot between the GPU sessions that run it for real.

One run (a module fixture, about 2 minutes on 2 cores) under a hard timeout; the tests read its
exit status, its table and the JSON it writes to $OUT.
"""
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import PY  # (a fast python: tests/forkserver.py)

from utils import engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every step the check must report (the compile steps may be skipped, with the reason).
STEPS = ['env', 'dataset',
         'train_tam_fp32', 'train_tam_amp', 'train_tam_bf16_cl', 'train_tam_compile',
         'train_i3d_fp32', 'train_i3d_amp', 'train_i3d_bf16_cl', 'train_i3d_compile',
         'dp_default', 'dp_gpu0', 'dist_syncbn', 'dist_resume',
         'test_cuda', 'test_cuda_fp32', 'test_cpu', 'scores_cpu_vs_cuda',
         'bench_i3d', 'bench_tam', 'bench_data', 'i3d_amp_cl_vs_fp32', 'loader_vs_tam_train',
         'bench_compile']
HARD_TIMEOUT = 540          # the dry run's own budget is 420 s


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('gpu_check')
    out = tmp / 'OUT'
    out.mkdir()
    env = dict(os.environ, OUT=str(out), GPU_CHECK_DIR=str(tmp / 'local'),
               GPU_CHECK_WHEELS=str(tmp / 'no_wheels'), PYTHON=PY)
    proc = subprocess.run(['bash', os.path.join(ROOT, 'tools', 'gpu_check.sh'), '--dry_run'],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=HARD_TIMEOUT)
    report = None
    if (out / 'gpu_check.json').is_file():
        report = json.loads((out / 'gpu_check.json').read_text())
    return proc, report, out, tmp / 'local'


def test_dry_run_passes_and_writes_its_files(dry_run):
    proc, report, out, local = dry_run
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert report is not None and report['mode'] == 'dry_run' and report['ok']
    files = sorted(os.listdir(out))
    assert files == ['gpu_check.json', 'gpu_check.log', 'gpu_check.md']   # $OUT: 8 files at most
    for name in files:
        assert (local / name).is_file()
    table = (out / 'gpu_check.md').read_text()
    assert '| step | result | key numbers | s |' in table
    assert table.strip().splitlines()[-1] in proc.stdout       # the table is printed too
    assert '===== train_tam_fp32: ok' in (out / 'gpu_check.log').read_text()


def test_every_step_ok_or_explained_skip_with_finite_numbers(dry_run):
    _, report, _, _ = dry_run
    steps = {s['step']: s for s in report['steps']}
    assert [s['step'] for s in report['steps']] == STEPS
    for name, s in steps.items():
        assert s['result'] in ('ok', 'skipped'), (name, s['detail'])
        if s['result'] == 'skipped':
            assert s['detail'], name
        for key, value in s['numbers'].items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (name, key, value)
        assert math.isfinite(s['seconds'])
    for name in STEPS:
        if name.startswith('train_') and not name.endswith('_compile'):
            numbers = steps[name]['numbers']
            assert numbers['clips_per_s'] > 0 and numbers['data_s_per_it'] >= 0, name
            assert numbers['peak_rss_mib'] > 0, name
    # --amp on the CPU: bf16 where the CPU computes it natively, else fp32; bf16 when asked
    plain_amp = 'autocast bfloat16' if engine.cpu_computes_bf16() else 'autocast off'
    assert plain_amp in steps['train_tam_amp']['detail']
    assert 'autocast bfloat16' in steps['train_tam_bf16_cl']['detail']
    assert 'channels_last' in steps['train_i3d_bf16_cl']['detail']
    assert steps['dist_resume']['numbers']['resumed_at_epoch'] == 1
    assert steps['bench_i3d']['numbers']['amp_channels_last_train_x_fp32'] > 0
    assert steps['loader_vs_tam_train']['numbers']['loader_clips_per_s'] > 0
    if steps['train_tam_compile']['result'] == 'skipped':
        assert '--compile' in steps['train_tam_compile']['detail']
    assert steps['train_i3d_compile']['result'] == 'skipped'       # the dry run's saving
    assert 'TAM only' in steps['train_i3d_compile']['detail']


def test_cpu_cuda_score_comparison_row(dry_run):
    _, report, _, _ = dry_run
    row = next(s for s in report['steps'] if s['step'] == 'scores_cpu_vs_cuda')
    assert row['result'] == 'ok'
    assert 'both on the CPU' in row['detail']
    assert row['numbers']['max_abs_diff'] == 0
    assert row['numbers']['videos'] == 4
