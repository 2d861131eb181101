"""A small TAM model learns the synthetic dataset's temporal classes on the CPU in about a
minute: validation accuracy at least twice chance, seeded."""
import train as train_entry
from tools.make_synthetic_dataset import generate


def test_tam_learns_synthetic(tmp_path):
    data = str(tmp_path / 'syn')
    summary = generate(data, seed=0, videos_per_class=24, val_per_class=6, height=64, width=80,
                       min_frames=16, max_frames=24, progress=False, workers=2)
    classes = summary['num_classes']
    result = train_entry.main([
        '--dataset', 'synthetic', '--datadir', data, '--backbone_net', 'resnet', '-d', '18',
        '--temporal_module_name', 'TAM', '--groups', '8', '--input_size', '64', '-b', '16',
        '-j', '2', '--lr', '0.05', '--epochs', '5', '--no_imagenet_pretrained', '--amp',
        '--lr_scheduler', 'cosine', '--logdir', str(tmp_path / 'logs'), '--seed', '0'])
    chance = 100.0 / classes
    assert result['best_top1'] >= 2 * chance, (result['best_top1'], chance)
