"""train.py -> resume -> test.py on a tiny synthetic dataset, on the CPU."""
import csv
import glob
import os

import numpy as np
import pytest
import torch

from conftest import tiny_synthetic as make_tiny_synthetic

import test as test_entry
import train as train_entry


@pytest.fixture(scope='module')
def tiny_synthetic(tmp_path_factory):
    return make_tiny_synthetic(str(tmp_path_factory.mktemp('syn') / 'data'))


def common(data, logdir):
    return ['--dataset', 'synthetic', '--datadir', data, '--backbone_net', 'resnet', '-d', '18',
            '--temporal_module_name', 'TAM', '--groups', '4', '--input_size', '32', '-b', '2',
            '-j', '0', '--no_imagenet_pretrained', '--logdir', logdir, '--lr', '0.01',
            '--lr_scheduler', 'step', '--lr_steps', '10']


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def test_train_resume_and_test(tiny_synthetic, tmp_path):
    data = tiny_synthetic
    first = train_entry.main(common(data, str(tmp_path / 'a')) + ['--epochs', '1'])
    folder = first['folder']
    for name in ('checkpoint.pth.tar', 'model_best.pth.tar', 'log.txt'):
        assert os.path.isfile(os.path.join(folder, name)), name
    assert glob.glob(os.path.join(folder, 'events.out.tfevents.*'))
    ckpt = torch.load(os.path.join(folder, 'checkpoint.pth.tar'), weights_only=False)
    assert ckpt['epoch'] == 1 and {'optimizer', 'scheduler', 'rng', 'best_top1'} <= set(ckpt)
    from utils.synthetic import CLASS_NAMES
    assert ckpt['classes'] == list(CLASS_NAMES[:4])    # the dataset's categories.txt
    # the run's machine-readable record: what it is, and one line an epoch
    import json
    described = json.load(open(os.path.join(folder, 'run.json')))
    assert (described['arch'], described['frames'], described['num_classes']) == \
        ('resnet18-TAM-b3-sum', 4, 4)
    assert described['params'] == sum(p.numel() for p in ckpt['state_dict'].values()
                                      if p.dtype.is_floating_point) - sum(
        v.numel() for k, v in ckpt['state_dict'].items() if 'running_' in k)
    rows = [json.loads(line) for line in open(os.path.join(folder, 'metrics.jsonl'))]
    assert [r['epoch'] for r in rows] == [1]
    assert rows[0]['val_top1'] == first['top1'] and rows[0]['best_top1'] == ckpt['best_top1']

    # Resuming the 1-epoch checkpoint for a second epoch equals 2 uninterrupted epochs.
    resumed = train_entry.main(common(data, str(tmp_path / 'b')) + [
        '--epochs', '2', '--resume', os.path.join(folder, 'checkpoint.pth.tar')])
    straight = train_entry.main(common(data, str(tmp_path / 'c')) + ['--epochs', '2'])
    wa = weights(os.path.join(resumed['folder'], 'checkpoint.pth.tar'))
    wb = weights(os.path.join(straight['folder'], 'checkpoint.pth.tar'))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k

    # test.py: 3 clips x 3 crops, scores and predictions written.
    result = test_entry.main(common(data, str(tmp_path / 'a')) + [
        '--pretrained', os.path.join(folder, 'checkpoint.pth.tar'),
        '--num_clips', '3', '--num_crops', '3', '--eval_split', 'test'])
    n_test = 4
    scores = np.load(os.path.join(folder, 'test_3clips_3crops_scores.npy'))
    assert scores.shape == (n_test, 4)
    # the original's rule by default: mean logits, not probabilities
    assert not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3) and (scores < 0).any()
    assert np.allclose(result['scores'], scores)
    with open(os.path.join(folder, 'test_3clips_3crops_predictions.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ['video', 'label', 'top1'] and len(rows) == n_test + 1
    assert result['count'] == n_test and 0 <= result['top1'] <= 100
    assert 0 <= result['mean_class_acc'] <= 100
    top1 = 100 * np.mean(scores.argmax(1) == result['labels'])
    assert result['top1'] == pytest.approx(top1)
    import json
    written = json.load(open(os.path.join(folder, 'test_3clips_3crops_result.json')))
    assert (written['top1'], written['views'], written['count']) == (result['top1'], 9, n_test)

    soft = test_entry.main(common(data, str(tmp_path / 'a')) + [
        '--pretrained', os.path.join(folder, 'checkpoint.pth.tar'),
        '--num_clips', '3', '--num_crops', '3', '--eval_split', 'test', '--view_fusion', 'softmax'])
    assert np.allclose(soft['scores'].sum(axis=1), 1.0, atol=1e-5)


def test_evaluate_only_and_unlabelled_test_list(tiny_synthetic, tmp_path):
    data = tiny_synthetic
    run = train_entry.main(common(data, str(tmp_path / 'a')) + ['--epochs', '1'])
    ckpt = os.path.join(run['folder'], 'checkpoint.pth.tar')
    ev = train_entry.main(common(data, str(tmp_path / 'a')) + ['-e', '--pretrained', ckpt])
    assert ev['count'] == 4
    # A test list without labels gives predictions only.
    unlabelled = tmp_path / 'unlabelled'
    unlabelled.mkdir()
    os.symlink(os.path.join(data, 'videos'), unlabelled / 'videos')
    for name in ('train.txt', 'val.txt', 'categories.txt'):
        (unlabelled / name).write_text(open(os.path.join(data, name)).read())
    with open(os.path.join(data, 'test.txt')) as f:
        lines = [' '.join(line.split()[:3]) for line in f if line.strip()]
    (unlabelled / 'test.txt').write_text('\n'.join(lines) + '\n')
    res = test_entry.main(common(str(unlabelled), str(tmp_path / 'u')) + [
        '--pretrained', ckpt, '--eval_split', 'test'])
    assert res['count'] == 0 and res['scores'].shape[0] == len(lines)
    assert 'mean_class_acc' not in res


def test_show_model_prints_params(capsys):
    assert train_entry.main(['--show_model', '--backbone_net', 'resnet', '-d', '50',
                             '--dataset', 'st2stv2', '--temporal_module_name', 'TAM']) is None
    out = capsys.readouterr().out
    assert 'parameters: 23,903,918' in out and 'conv MACs' in out


FAMILIES = [('resnet', ['-d', '18', '--temporal_module_name', 'TSN']),
            ('resnet', ['-d', '18', '--temporal_module_name', 'TSM']),
            ('inception_v1', ['--temporal_module_name', 'TAM']),
            # s3d halves 4 frames to none (its last pool has a 2-frame window, as the original's)
            ('i3d_resnet', ['-d', '18']), ('s3d_resnet', ['-d', '18']), ('i3d', []),
            ('s3d', ['--without_t_stride']),
            ('r3d', ['-d', '18']), ('mc3', ['-d', '18']), ('r2plus1d', ['-d', '18'])]


@pytest.mark.parametrize('backbone,extra', FAMILIES, ids=lambda v: v if isinstance(v, str) else '-'.join(v))
def test_every_family_trains_and_tests(tiny_synthetic, tmp_path, backbone, extra):
    # 64 px, not 32: at 1x1 pixel and 2 clips, layer 4's BatchNorm normalises 2 values per channel,
    # which makes the first gradients explode for some 3D families (a property of the toy size).
    args = ['--dataset', 'synthetic', '--datadir', tiny_synthetic, '--backbone_net', backbone,
            '--groups', '4', '--input_size', '64', '-b', '2', '-j', '0', '--no_imagenet_pretrained',
            '--logdir', str(tmp_path), '--lr', '0.01', '--amp', '--clip_gradient', '20'] + extra
    trained = train_entry.main(args + ['--epochs', '1'])
    ckpt = os.path.join(trained['folder'], 'checkpoint.pth.tar')
    result = test_entry.main(args + ['--pretrained', ckpt, '--num_clips', '2', '--num_crops', '1'])
    assert result['count'] == 4 and result['scores'].shape == (4, 4) and 0 <= result['top1'] <= 100


@pytest.mark.parametrize('backbone,extra', [('resnet', ['-d', '18', '--temporal_module_name', 'TAM']),
                                            ('i3d_resnet', ['-d', '18', '--flow_length', '1'])])
def test_flow_trains_and_tests(flow_dataset, tmp_path, backbone, extra):
    """--modality flow end to end: 2 x --flow_length input channels, ImageNet-free start."""
    args = ['--dataset', 'synthetic', '--datadir', flow_dataset, '--modality', 'flow',
            '--backbone_net', backbone, '--groups', '4', '--input_size', '32', '-b', '2', '-j', '0',
            '--no_imagenet_pretrained', '--logdir', str(tmp_path), '--lr', '0.01'] + extra
    trained = train_entry.main(args + ['--epochs', '1'])
    length = 1 if '--flow_length' in extra else 5
    assert f'-flow{length}-' in trained['folder'] and np.isfinite(trained['loss'])
    ckpt = os.path.join(trained['folder'], 'checkpoint.pth.tar')
    result = test_entry.main(args + ['--pretrained', ckpt, '--num_clips', '2', '--num_crops', '3'])
    assert result['count'] == 6 and result['scores'].shape == (6, 2)


def test_channels_last_trains_resumes_and_tests(tiny_synthetic, tmp_path):
    """--channels_last through the entrypoints (equality of the math: tests/test_models.py)."""
    args = common(tiny_synthetic, str(tmp_path)) + ['--channels_last', '--amp']
    first = train_entry.main(args + ['--epochs', '1'])
    ckpt = os.path.join(first['folder'], 'checkpoint.pth.tar')
    second = train_entry.main(args + ['--epochs', '2', '--resume', ckpt])
    assert np.isfinite(first['loss']) and np.isfinite(second['loss'])
    stem = weights(ckpt)['conv1.weight']                  # saved as trained: channels_last
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    result = test_entry.main(args + ['--pretrained', ckpt, '--num_clips', '2'])
    assert result['count'] == 4


def test_synthetic_folder_of_the_other_modality_is_a_clear_error(tiny_synthetic, tmp_path):
    with pytest.raises(SystemExit, match='holds the synthetic dataset as rgb, not flow'):
        train_entry.main(common(tiny_synthetic, str(tmp_path)) + ['--modality', 'flow',
                                                                    '--epochs', '1'])


def test_test_py_refuses_an_rgb_checkpoint_for_flow(flow_dataset, tiny_synthetic, tmp_path):
    """train.py may start flow from RGB weights (cross-modality); test.py must not evaluate an
    RGB model on flow."""
    run = train_entry.main(common(tiny_synthetic, str(tmp_path)) + ['--epochs', '1'])
    ckpt = os.path.join(run['folder'], 'checkpoint.pth.tar')
    flow = ['--dataset', 'synthetic', '--datadir', flow_dataset, '--modality', 'flow',
            '--backbone_net', 'resnet', '-d', '18', '--temporal_module_name', 'TAM', '--groups', '4',
            '--input_size', '32', '-b', '2', '-j', '0', '--logdir', str(tmp_path / 'f')]
    with pytest.raises(SystemExit, match='--modality flow differs from the rgb that .* was '
                                         'trained with'):
        test_entry.main(flow + ['--pretrained', ckpt])
    bare = str(tmp_path / 'weights_only.pth')         # no stored options: the weights decide
    torch.save({'state_dict': torch.load(ckpt, weights_only=False)['state_dict']}, bare)
    with pytest.raises(SystemExit, match='1 of another shape .first: conv1.weight') as err:
        test_entry.main(flow + ['--pretrained', bare])
    assert 'shape: conv1.weight: file (64, 3, 7, 7) vs model (64, 10, 7, 7)' in err.value.details
    started = train_entry.main(flow + ['--pretrained', ckpt, '--epochs', '1'])
    assert np.isfinite(started['loss'])


def test_the_first_epoch_writes_model_best_even_at_top1_zero(tiny_synthetic, tmp_path,
                                                             monkeypatch):
    """test.py's README command reads model_best.pth.tar: a first run must write it even when
    validation top-1 stays 0; later epochs only when top-1 improves."""
    import utils.engine as engine
    zero = dict(loss=1.0, top1=0.0, top5=0.0, count=4, bad=0)
    monkeypatch.setattr(engine, 'evaluate', lambda *a, **k: dict(zero))
    run = train_entry.main(common(tiny_synthetic, str(tmp_path)) + ['--epochs', '2'])
    best = os.path.join(run['folder'], 'model_best.pth.tar')
    assert torch.load(best, weights_only=False)['epoch'] == 1       # not rewritten at epoch 2
    assert torch.load(os.path.join(run['folder'], 'checkpoint.pth.tar'),
                      weights_only=False)['epoch'] == 2


def test_a_mistyped_synthetic_datadir_is_an_error_and_creates_nothing(tmp_path):
    typo = str(tmp_path / 'data' / 'mnie')
    with pytest.raises(SystemExit, match=f'--datadir {typo} does not exist; .*--make_synthetic'):
        train_entry.main(common(typo, str(tmp_path / 'logs')) + ['--epochs', '1'])
    assert not os.path.exists(typo) and not os.path.exists(tmp_path / 'logs' / 'synthetic-rgb')


def test_resume_of_another_model_names_the_options_that_differ(tiny_synthetic, tmp_path):
    run = train_entry.main(common(tiny_synthetic, str(tmp_path)) + ['--epochs', '1'])
    ckpt = os.path.join(run['folder'], 'checkpoint.pth.tar')
    other = common(tiny_synthetic, str(tmp_path / 'b'))
    other[other.index('TAM')] = 'TSM'
    with pytest.raises(SystemExit, match=r'holds another model than this run: '
                                         r'--temporal_module_name TAM \(this run: TSM\)'):
        train_entry.main(other + ['--epochs', '2', '--resume', ckpt])
