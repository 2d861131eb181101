import pytest

from opts import arg_parser, validate_args
from utils.config import Config, usable_cpus

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
    cfg = Config.from_args(args)
    assert cfg.model.depth == 50 and cfg.optim.batch_size == 72
    assert cfg.data.workers == min(12, usable_cpus()) and cfg.model.temporal_module_name == 'TAM'
    assert any('--threed_data is ignored' in n for n in notes)


def test_ignored_options_are_reported():
    args = arg_parser().parse_args(['--backbone_net', 'i3d_resnet', '--temporal_module_name', 'TAM'])
    assert any('ignored by i3d_resnet' in n for n in validate_args(args))
    args = arg_parser().parse_args(['--backbone_net', 'resnet'])
    validate_args(args)
    assert Config.from_args(args).model.temporal_module_name == 'TSN'
    # notes derive from what each family reads (models/registry.py)
    notes = validate_args(arg_parser().parse_args(['--backbone_net', 'mc3', '--pooling_method',
                                                   'avg', '--without_t_stride', '--dw_t_conv']))
    assert '--pooling_method is ignored by mc3 (it has no pooling layer)' in notes
    assert '--without_t_stride is ignored by mc3 (it changes nothing: its layers never reduce ' \
           'time)' in notes
    assert '--dw_t_conv is ignored by mc3' in notes
    notes = validate_args(arg_parser().parse_args(['--backbone_net', 'i3d', '-d', '50',
                                                   '--shift_div', '4']))
    assert notes[-2:] == ['--shift_div is ignored without TSM', '-d/--depth is ignored by i3d']
    assert not validate_args(arg_parser().parse_args(['--backbone_net', 's3d', '--dw_t_conv',
                                                      '--pooling_method', 'avg',
                                                      '--groups', '8', '--dataset', 'st2stv2']))


@pytest.mark.parametrize('argv,msg', [
    (['--dataset', 'st2stv2', '--num_crops', '10'], 'flipped crops'),
    (['--lr_scheduler', 'step', '--lr_steps', '10', '20'], 'one --lr_steps value'),
    (['--mean', '0.5', '0.5'], '--mean takes 1 or 3 values'),
    (['--modality', 'flow', '--std', '0.2', '0.2', '0.2'], '--std takes 1 or 10 values'),
    (['--modality', 'flow', '--video_backend', 'pyav'], 'does not combine'),
    (['--use_lmdb', '--video_backend', 'pyav'], 'name different storages'),
    (['--storage', 'folders', '--use_lmdb'], 'name different storages'),
    (['--modality', 'flow', '--flow_length', '0'], '--flow_length must be at least 1'),
    (['--groups', '0'], 'at least 1'),
])
def test_invalid_combinations_exit_with_one_line(argv, msg):
    with pytest.raises(SystemExit, match=msg) as e:
        validate_args(arg_parser().parse_args(argv))
    assert '\n' not in str(e.value)


# The original code's defaults (IBM/action-recognition-pytorch opts.py) of the options that
# define an experiment, where this project's differ.
ORIGINAL_EXPERIMENT_DEFAULTS = {'backbone_net': 's3d', 'groups': 16, 'dataset': 'st2stv2'}


def test_original_defaults_table_is_the_originals_and_differs_here():
    from opts import ORIGINAL_DEFAULTS
    assert ORIGINAL_DEFAULTS == ORIGINAL_EXPERIMENT_DEFAULTS
    defaults = arg_parser().parse_args([])
    for name, value in ORIGINAL_DEFAULTS.items():
        assert getattr(defaults, name) != value, name          # else the note would be wrong


def notes_of(argv, entrypoint='train'):
    return validate_args(arg_parser().parse_args(argv), entrypoint)


def test_omitted_experiment_options_are_noted_with_both_values():
    notes = notes_of([])
    for name, here, original in (('backbone_net', 'resnet', 's3d'), ('groups', 8, 16),
                                 ('dataset', 'synthetic', 'st2stv2')):
        hits = [n for n in notes if n.startswith(f'--{name} was not given')]
        assert len(hits) == 1 and f'it is {here} here' in hits[0] and f'took {original}' in hits[0]


@pytest.mark.parametrize('argv', [
    ['--backbone_net', 'resnet', '--groups', '8', '--dataset', 'synthetic'],   # the defaults
    ['--backbone_net=resnet', '--groups=8', '--dataset=synthetic'],
    ['--back', 's3d', '--gro', '16', '--datas', 'st2stv2'],                     # abbreviated
])
def test_given_options_are_not_noted_however_spelled(argv):
    args = arg_parser().parse_args(argv)
    assert {'backbone_net', 'groups', 'dataset'} <= set(args.given_options)
    assert not [n for n in validate_args(args) if 'was not given' in n]


def test_given_options_of_short_flags_and_defaults_restored():
    parser = arg_parser()
    args = parser.parse_args(['-b8', '-j', '0', '--amp'])
    assert args.given_options == ['amp', 'batch_size', 'workers']
    again = parser.parse_args([])                 # the probe left the defaults in place
    assert again.batch_size == 8 and again.workers == 2 and again.backbone_net == 'resnet'
    assert again.given_options == []


def test_a_namespace_not_from_the_parser_gets_no_default_notes():
    args = arg_parser().parse_args([])
    del args.given_options
    assert not [n for n in validate_args(args) if 'was not given' in n]


def test_test_py_notes_the_split_the_original_would_have_taken():
    assert any('original test.py evaluated the test list' in n for n in notes_of([], 'test'))
    for argv in (['-e'], ['--eval_split', 'val']):
        assert not any('eval_split' in n for n in notes_of(argv, 'test'))
    assert not any('eval_split' in n for n in notes_of([], 'train'))


def test_meaning_changes_are_noted():
    assert any('in the original code it made the evaluation clips random' in n
               for n in notes_of(['--random_sampling']))
    v2 = ['--augmentor_ver', 'v2', '--input_size', '112']
    assert any('--scale_range was not given' in n for n in notes_of(v2))
    assert not any('--scale_range' in n for n in notes_of(v2 + ['--scale_range', '128', '160']))


def test_view_fusion_defaults_to_the_originals_logits():
    assert arg_parser().parse_args([]).view_fusion == 'logits'
    assert arg_parser().parse_args(['--view_fusion', 'softmax']).view_fusion == 'softmax'
    with pytest.raises(SystemExit):
        arg_parser().parse_args(['--view_fusion', 'max'])


@pytest.mark.parametrize('argv', [['--lr_scheduler', 'step', '--lr_steps', '2.5'],
                                  ['--lr_scheduler', 'multisteps', '--lr_steps', '10', '15.5']])
def test_fractional_lr_steps_are_an_error(argv):
    with pytest.raises(SystemExit, match='whole numbers of epochs'):
        validate_args(arg_parser().parse_args(argv))


@pytest.mark.parametrize('argv,msg', [
    (['--lr', '-1'], '--lr -1 is impossible; give a value above 0'),
    (['--lr', '0'], '--lr 0 is impossible'),
    (['--lr', 'inf'], '--lr inf is not a number'),
    (['-j', '-1'], '-j/--workers -1 is impossible; give 0 or more'),
    (['--epochs', '-1'], '--epochs -1 is impossible'),
    (['--epochs', '0'], '--epochs 0 trains nothing'),
    (['-b', '0'], '-b/--batch-size 0 is impossible'),
    (['--dropout', '1.5'], '--dropout 1.5 is impossible; give 0 or more and below 1'),
    (['--dropout', '1'], '--dropout 1 is impossible'),
    (['--momentum', '1.5'], '--momentum 1.5 is impossible'),
    (['--weight-decay=-1e-4'], '--weight-decay -0.0001 is impossible'),
    (['--max_bad_ratio', '-0.1'], '--max_bad_ratio -0.1 is impossible'),
    (['--seed', '-3'], '--seed -3 is impossible'),
    (['--clip_gradient', '0'], '--clip_gradient 0 is impossible'),
    (['--std', '0.2', '0', '0.2'], '--std values must be above 0'),
    (['--scale_range', '320', '256'], '--scale_range 320 256'),
    (['--start-epoch', '4', '--epochs', '4'], '--start-epoch 4 leaves nothing to train'),
    (['--resume', '/no/such.pth'], '--resume /no/such.pth does not exist'),
    (['--exclude_list', '/'], '--exclude_list / is a folder, not a file'),
])
def test_impossible_numbers_and_missing_files_are_one_line_errors(argv, msg):
    with pytest.raises(SystemExit) as e:
        validate_args(arg_parser().parse_args(argv))
    assert str(e.value).startswith('error: ') and msg in str(e.value)
    assert '\n' not in str(e.value)


def test_the_boundaries_themselves_are_valid():
    validate_args(arg_parser().parse_args(['--momentum', '1', '--dropout', '0', '-j', '0',
                                           '--max_bad_ratio', '0', '--weight-decay', '0',
                                           '--epochs', '1']))


def test_only_files_the_command_line_gave_are_checked():
    args = arg_parser().parse_args(['--pretrained', __file__, '--resume', '/no/such.pth'])
    assert any('--resume is ignored by test.py' in n for n in validate_args(args, 'test'))
    parser = arg_parser()                    # as tools/export_weights.py: a stored option
    parser.set_defaults(exclude_list='/other/machine/bad.txt')
    validate_args(parser.parse_args([]), 'test')


def test_workers_beyond_the_cpus_are_capped_with_a_note_unless_insisted(monkeypatch):
    import utils.config
    monkeypatch.setattr(utils.config, 'usable_cpus', lambda: 2)
    args = arg_parser().parse_args(['-j', '36'])
    notes = validate_args(args)
    assert Config.from_args(args).data.workers == 2 and args.workers == 36   # args unchanged
    assert '-j 36 is more than the 2 CPUs this process may use: starting 2 workers ' \
           '(--no_worker_cap starts 36)' in notes
    args = arg_parser().parse_args(['-j', '36', '--no_worker_cap'])
    assert not any('-j' in n for n in validate_args(args))
    assert Config.from_args(args).data.workers == 36
    args = arg_parser().parse_args(['-j', '2'])
    assert not any('-j' in n for n in validate_args(args))
    assert Config.from_args(args).data.workers == 2


def test_usable_cpus_is_the_affinity_of_this_process():
    import os
    assert usable_cpus() == len(os.sched_getaffinity(0)) >= 1


def test_command_line_syntax_errors_are_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as e:
        arg_parser().parse_args(['--learning_rate', '0.1'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: unrecognized arguments: '
                                                     '--learning_rate 0.1') and '--help' in err


@pytest.mark.parametrize('argv,kind', [([], 'folders'), (['--use_lmdb'], 'lmdb'),
                                       (['--storage', 'lmdb'], 'lmdb'),
                                       (['--video_backend', 'pyav'], 'video'),
                                       (['--storage', 'video', '--video_backend', 'pyav'], 'video')])
def test_storage_option_and_its_older_spellings(argv, kind):
    args = arg_parser().parse_args(argv)
    validate_args(args)
    assert Config.from_args(args).data.storage == kind


def test_parsed_options_are_not_changed_by_validation_or_configs():
    args = arg_parser().parse_args(['-j', '999', '--backbone_net', 'resnet'])
    before = dict(vars(args))
    validate_args(args)
    cfg = Config.from_args(args)
    assert vars(args) == before
    assert cfg.options['temporal_module_name'] == 'TSN' and cfg.options['workers'] < 999
