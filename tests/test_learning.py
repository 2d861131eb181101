"""A small TAM model learns temporal classes of the synthetic dataset on the CPU in about a
minute: the four motion directions (left/right and up/down are time-reversed pairs, so frame
order matters), validation accuracy at least twice chance, seeded."""
import train as train_entry
from utils.synthetic import generate


def test_tam_learns_motion_direction(tmp_path):
    data = str(tmp_path / 'syn')
    summary = generate(data, seed=0, videos_per_class=40, val_per_class=10, height=64, width=80,
                       min_frames=16, max_frames=24, classes=4, progress=False, workers=2)
    assert summary['classes'][:4] == ['moving_left', 'moving_right', 'moving_up', 'moving_down']
    result = train_entry.main([
        '--dataset', 'synthetic', '--datadir', data, '--backbone_net', 'resnet', '-d', '18',
        '--temporal_module_name', 'TAM', '--groups', '8', '--input_size', '64', '-b', '16',
        '-j', '2', '--lr', '0.01', '--epochs', '5', '--no_imagenet_pretrained', '--amp',
        '--lr_scheduler', 'cosine', '--logdir', str(tmp_path / 'logs'), '--seed', '0'])
    chance = 100.0 / 4
    assert result['best_top1'] >= 2 * chance, (result['best_top1'], chance)
