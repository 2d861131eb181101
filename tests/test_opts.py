import pytest

from opts import arg_parser, validate_args

ORIGINAL_OPTIONS = [
    '--backbone_net', '--depth', '--dropout', '--groups', '--frames_per_group',
    '--without_t_stride', '--pooling_method', '--dw_t_conv', '--temporal_module_name',
    '--blending_frames', '--blending_method', '--no_dw_conv', '--gpu',
    '--disable_cudnn_benchmark', '--batch-size', '--lr', '--lr_scheduler', '--lr_steps',
    '--momentum', '--nesterov', '--weight-decay', '--epochs', '--resume', '--pretrained',
    '--start-epoch', '--clip_gradient', '--no_imagenet_pretrained', '--workers', '--datadir',
    '--dataset', '--threed_data', '--input_size', '--disable_scaleup', '--random_sampling',
    '--dense_sampling', '--augmentor_ver', '--scale_range', '--modality', '--mean', '--std',
    '--logdir', '--print-freq', '--show_model', '--evaluate', '--num_crops', '--num_clips',
    '--sync-bn', '--world-size', '--rank', '--dist-url', '--dist-backend',
    '--multiprocessing-distributed', '--use_lmdb', '--device', '--amp', '--seed']


def test_every_option_has_help():
    text = arg_parser().format_help()
    for opt in ORIGINAL_OPTIONS:
        assert opt in text, opt
    for action in arg_parser()._actions:
        assert action.help, action.option_strings


def test_original_command_line_parses():
    args = arg_parser().parse_args(
        '--datadir /d --dataset st2stv2 --backbone_net resnet -d 50 --groups 8 '
        '--frames_per_group 1 --temporal_module_name TAM --blending_frames 3 -b 72 --lr 0.01 '
        '--lr_scheduler cosine --epochs 50 -j 12 --dropout 0.5 --threed_data'.split())
    notes = validate_args(args)
    assert args.depth == 50 and args.batch_size == 72 and args.workers == 12
    assert any('--threed_data is ignored' in n for n in notes)


def test_ignored_options_are_reported():
    args = arg_parser().parse_args(['--backbone_net', 'i3d_resnet', '--temporal_module_name', 'TAM'])
    assert any('ignored by i3d_resnet' in n for n in validate_args(args))
    args = arg_parser().parse_args(['--backbone_net', 'resnet'])
    validate_args(args)
    assert args.temporal_module_name == 'TSN'


@pytest.mark.parametrize('argv,msg', [
    (['--dataset', 'st2stv2', '--num_crops', '10'], 'flipped crops'),
    (['--lr_scheduler', 'step', '--lr_steps', '10', '20'], 'one --lr_steps value'),
    (['--mean', '0.5', '0.5'], '--mean takes 1 or 3 values'),
    (['--modality', 'flow', '--std', '0.2', '0.2', '0.2'], '--std takes 1 or 10 values'),
    (['--modality', 'flow', '--video_backend', 'pyav'], 'does not combine'),
    (['--use_lmdb', '--video_backend', 'pyav'], 'does not combine'),
    (['--modality', 'flow', '--flow_length', '0'], '--flow_length must be at least 1'),
    (['--groups', '0'], 'at least 1'),
])
def test_invalid_combinations_exit_with_one_line(argv, msg):
    with pytest.raises(SystemExit, match=msg) as e:
        validate_args(arg_parser().parse_args(argv))
    assert '\n' not in str(e.value)
