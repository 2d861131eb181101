"""tools/predict.py on a video file, a frame folder, a broken file, over time windows, and
with a checkpoint that holds no class names."""
import csv
import json
import os

import pytest
import torch

from PIL import Image

import train as train_entry
from conftest import encode_moving_square, encode_phone_video, tiny_synthetic
from tools import predict
from utils.synthetic import CLASS_NAMES

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('predict')
    data = str(root / 'data')
    tiny_synthetic(data)
    run = train_entry.main(['--dataset', 'synthetic', '--datadir', data, '--backbone_net',
                            'resnet', '-d', '18', '--temporal_module_name', 'TAM', '--groups',
                            '4', '--input_size', '32', '-b', '2', '-j', '0',
                            '--no_imagenet_pretrained', '--logdir', str(root / 'logs'),
                            '--epochs', '1'])
    video = str(root / 'in' / 'square.mp4')
    encode_moving_square(video, 'h264', 40, +1, seed=0)           # 4 s at 10 fps
    broken = root / 'in' / 'broken.mp4'
    broken.write_bytes(b'not a video at all' * 10)
    return dict(ckpt=os.path.join(run['folder'], 'model_best.pth.tar'), video=video,
                broken=str(broken), frames=os.path.join(data, 'videos', os.listdir(
                    os.path.join(data, 'videos'))[0]), root=root)


def test_video_folder_and_broken_file(trained, tmp_path, capsys):
    out = str(tmp_path / 'p.csv')
    rc = predict.main(['--pretrained', trained['ckpt'], trained['video'], trained['broken'],
                       trained['frames'], '--out', out])
    assert rc == 1                                   # one input failed
    err = capsys.readouterr()
    errors = [ln for ln in err.err.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith(f'error: {trained["broken"]}: ')
    rows = list(csv.DictReader(open(out)))
    assert [r['input'] for r in rows] == [trained['video'], trained['frames']]
    assert rows[0]['frames'] == '40'
    for r in rows:
        assert r['top1_name'] in CLASS_NAMES[:4]
        scores = [float(r[f'top{i}_score']) for i in range(1, 5)]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-5
        assert 'top5_label' not in r or r['top5_label'] == ''   # 4 classes: top-4
    assert CLASS_NAMES[int(rows[0]['top1_label'])] == rows[0]['top1_name']
    assert trained['video'] in err.out


def test_predictions_equal_the_model_on_test_views(trained):
    """The frame folder's scores are the model's softmax of its mean logits over the views."""
    model, cfg, names, device = predict.load_model(trained['ckpt'], [], False, None)
    p = predict.Predictor(model, cfg, device)
    n = p.frame_count(trained['frames'])
    probs = p.scores(os.path.abspath(trained['frames']), 1, n, video=False)
    assert names == CLASS_NAMES[:4] and probs.shape == (4,)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_window_over_time_json_and_timeline(trained, tmp_path):
    out = str(tmp_path / 'long.json')
    assert predict.main(['--pretrained', trained['ckpt'], trained['video'], '--window', '1',
                         '--out', out]) == 0
    got = json.load(open(out))
    rows = got['predictions']
    assert len(rows) == 4 and got['errors'] == []
    assert [(r['start_s'], r['end_s']) for r in rows] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert all(r['frames'] == 10 and len(r['top']) == 4 for r in rows)
    with Image.open(str(tmp_path / 'long_timeline.png')) as im:
        assert im.format == 'PNG' and min(im.size) > 200


def test_checkpoint_without_class_names(trained, tmp_path, capsys):
    content = torch.load(trained['ckpt'], map_location='cpu', weights_only=False)
    del content['classes']
    bare = str(tmp_path / 'bare.pth.tar')
    torch.save(content, bare)
    assert predict.main(['--pretrained', bare, trained['frames']]) == 0
    captured = capsys.readouterr()
    assert 'holds no class names' in captured.err
    assert '(0)' in captured.out and 'moving_left' not in captured.out
    cats = tmp_path / 'cats.txt'
    cats.write_text('w\nx\ny\nz\n')
    out = str(tmp_path / 'n.csv')
    assert predict.main(['--pretrained', bare, trained['frames'], '--categories', str(cats),
                         '--out', out]) == 0
    assert list(csv.DictReader(open(out)))[0]['top1_name'] in 'wxyz'


def test_missing_input_and_window_on_a_folder(trained, capsys):
    rc = predict.main(['--pretrained', trained['ckpt'], str(trained['root'] / 'nope.mp4'),
                       trained['frames'], '--window', '1'])
    assert rc == 1
    err = capsys.readouterr().err
    assert 'nope.mp4: no such file or folder' in err and '--window is for video files' in err


def test_phone_video_is_predicted_upright(trained, tmp_path):
    """A phone's portrait video (landscape pictures + display matrix) reaches the model as the
    same video stored upright, not as its sideways pictures (lossless pictures: the very same
    clips)."""
    model, cfg, _, device = predict.load_model(trained['ckpt'], [], False, None)
    seen = []

    def recording(clips):
        seen.append(clips.clone())
        return model(clips)

    predictor = predict.Predictor(recording, cfg, device)
    clips = {}
    for stored in ('rotated', 'upright', 'sideways'):
        path = str(tmp_path / f'{stored}.mp4')
        encode_phone_video(path, stored, frames=8)
        seen.clear()
        predictor.scores(path, 1, 8, video=True)
        clips[stored] = torch.cat(seen)
    assert torch.equal(clips['rotated'], clips['upright'])
    assert not torch.equal(clips['sideways'], clips['upright'])
