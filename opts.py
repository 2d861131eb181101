"""Command-line options shared by train.py, train_dist.py and test.py.

The option names and meanings follow the original action-recognition study code, so that its
command lines keep working. `validate_args` turns invalid combinations into one-line errors and
returns notes about options that the chosen model or mode ignores, and about omitted options
whose default here is not the original's.
"""
import argparse
import dataclasses
import os

from models import FAMILIES, ModelConfig, family
from models.temporal import TEMPORAL_OPTIONS
from utils.config import (FLOW_LENGTH, Config, DataConfig, DistConfig, EvalConfig, OptimConfig,
                          RunConfig, capped_workers)
from utils.dataset_config import DATASET_CONFIG
from utils.errors import UserError
from utils.storage import STORAGE_KINDS

# Every default is the configs' (utils/config.py, models/config.py): written once.
DEFAULTS = {f.name: f.default for kind in (ModelConfig, DataConfig, OptimConfig, EvalConfig,
                                           RunConfig, DistConfig)
            for f in dataclasses.fields(kind) if f.default is not dataclasses.MISSING}
D = DEFAULTS

# Options that define the experiment whose default here differs from the original code's
# (its opts.py): a command that omits them gets a note saying so.
ORIGINAL_DEFAULTS = {'backbone_net': 's3d', 'groups': 16, 'dataset': 'st2stv2'}


class OptionParser(argparse.ArgumentParser):
    """An ArgumentParser whose namespaces also hold `given_options`: the sorted names (dests)
    of the options the command line gave, however spelled (abbreviated, `--opt=value`, `-b8`),
    so that `validate_args` can tell an omitted option from one given its default value."""

    def error(self, message: str):
        """A command-line mistake in one line, as every other error (argparse's default adds
        the whole usage); exit status 2, as argparse's."""
        self.exit(2, f'error: {message}, {self.prog}; see {self.prog} --help\n')

    def parse_known_args(self, args=None, namespace=None):
        import sys
        argv = sys.argv[1:] if args is None else list(args)
        ns, extra = super().parse_known_args(argv, namespace)
        ns.given_options = sorted(self._given(argv))
        return ns, extra

    def _given(self, argv: list) -> set:
        # Parse again with every default suppressed: only what the command line set appears.
        saved = [(a, a.default) for a in self._actions], self._defaults
        try:
            for a in self._actions:
                a.default = argparse.SUPPRESS
            self._defaults = {}
            probe, _ = super().parse_known_args(argv, argparse.Namespace())
        finally:
            for a, default in saved[0]:
                a.default = default
            self._defaults = saved[1]
        return set(vars(probe))


def arg_parser(distributed: bool = False) -> argparse.ArgumentParser:
    """Every option of train.py and test.py; `distributed` words -b/-j for train_dist.py,
    where -b is the global batch and -j the workers of a node."""
    p = OptionParser(
        description='Video action recognition: train and evaluate 2D and 3D CNNs.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    m = p.add_argument_group('model')
    m.add_argument('--backbone_net', default=D['backbone_net'], choices=sorted(FAMILIES),
                   help='model family (the original code defaulted to s3d)')
    m.add_argument('-d', '--depth', default=D['depth'], type=int, choices=[18, 34, 50, 101, 152],
                   help='ResNet depth (resnet, i3d_resnet, s3d_resnet, r3d, mc3, r2plus1d); '
                        'ignored by the Inception-based families')
    m.add_argument('--dropout', default=D['dropout'], type=float, help='dropout ratio before the classifier')
    m.add_argument('--without_t_stride', action='store_true',
                   help='keep the frame count: no temporal stride in the 3D models (i3d and s3d '
                        'still pool time with stride 1, as the original), no temporal pooling '
                        'between stages in the 2D ones (mc3 never reduces time)')
    m.add_argument('--pooling_method', default=D['pooling_method'], choices=['avg', 'max'],
                   help='pooling between stages: of time for resnet and inception_v1, of every '
                        'pool (space and time) for i3d and s3d; ignored by i3d_resnet and '
                        's3d_resnet (a max-pool stem, as the original) and r3d, mc3, r2plus1d')
    m.add_argument('--dw_t_conv', action='store_true',
                   help='depthwise temporal convs (s3d, s3d_resnet only)')
    m.add_argument('--temporal_module_name', default=None, choices=sorted(TEMPORAL_OPTIONS),
                   help='temporal module of the 2D models (default TSN); ignored by 3D models')
    m.add_argument('--blending_frames', default=D['blending_frames'], type=int, help='TAM: frames blended')
    m.add_argument('--blending_method', default=D['blending_method'], choices=['sum', 'max'],
                   help='TAM: how the blended frames are combined')
    m.add_argument('--no_dw_conv', action='store_true',
                   help='TAM: full 1x1 convs instead of depthwise ones')
    m.add_argument('--shift_div', default=D['shift_div'], type=int,
                   help='TSM: 1/shift_div of the channels shift each way in time')
    m.add_argument('--show_model', action='store_true',
                   help='print the model, its parameters and conv MACs (GFLOPs), and exit')

    d = p.add_argument_group('data')
    d.add_argument('--dataset', default=D['dataset'], choices=sorted(DATASET_CONFIG),
                   help='dataset (list file names, classes, frame names; the original code '
                        'defaulted to st2stv2)')
    d.add_argument('--datadir', default=D['datadir'],
                   help='dataset root holding the list files and the frame folders; for '
                        '--dataset synthetic without lists there, the synthetic dataset is '
                        'generated at data/synthetic or data/synthetic_flow, elsewhere only '
                        'with --make_synthetic (a mistyped path is an error)')
    d.add_argument('--make_synthetic', action='store_true',
                   help='--dataset synthetic: generate the synthetic dataset in a --datadir '
                        'that has no lists, whatever its path')
    d.add_argument('--groups', default=D['groups'], type=int,
                   help='frames per clip (the original code defaulted to 16)')
    d.add_argument('--frames_per_group', default=D['frames_per_group'], type=int,
                   help='uniform sampling: frames per segment (one is kept); '
                        'dense sampling: the stride between frames')
    d.add_argument('--dense_sampling', action='store_true',
                   help='sample consecutive frames at a fixed stride (I3D style) '
                        'instead of one frame per segment (TSN style)')
    d.add_argument('--random_sampling', action='store_true',
                   help='uniform sampling in training: an independent random offset per '
                        'segment instead of one random offset shared by all segments')
    d.add_argument('--threed_data', action='store_true',
                   help='kept for old command lines: every model takes (B, C, T, H, W)')
    d.add_argument('--input_size', default=D['input_size'], type=int, help='crop size fed to the model')
    d.add_argument('--disable_scaleup', action='store_true',
                   help='evaluation: resize the shorter side to input_size, not input_size*256/224')
    d.add_argument('--augmentor_ver', default=D['augmentor_ver'], choices=['v1', 'v2'],
                   help='training augmentation: v1 multi-scale crop (TSN), '
                        'v2 random shorter side in --scale_range then random crop')
    d.add_argument('--scale_range', default=None, type=int, nargs=2,
                   help='augmentor v2: range of the shorter side '
                        '(default [256, 320] scaled by input_size/224)')
    d.add_argument('--modality', default=D['modality'], choices=['rgb', 'flow'],
                   help='rgb frames, or optical flow stored as <frame>_x.jpg/<frame>_y.jpg '
                        'grey pairs (TSN convention)')
    d.add_argument('--flow_length', default=D['flow_length'], type=int,
                   help='flow: consecutive x/y pairs stacked at each sampled frame, giving '
                        '2*flow_length input channels (5 as in TSN; 1 for I3D-style flow)')
    d.add_argument('--mean', type=float, nargs='+', default=None,
                   help='per-channel mean (0-1 scale, RGB order); default as the original: '
                        'ImageNet (0.485 0.456 0.406) for rgb and 0.5 for flow for the ResNet '
                        'families, 0.5 for inception_v1, i3d and s3d')
    d.add_argument('--std', type=float, nargs='+', default=None,
                   help='per-channel std (0-1 scale, RGB order); default as the original: '
                        'ImageNet (0.229 0.224 0.225) for rgb and their mean (0.226) for flow '
                        'for the ResNet families, 0.5 for inception_v1, i3d and s3d')
    d.add_argument('--storage', default=None, choices=STORAGE_KINDS,
                   help='where the frames come from: folders of JPEG frames (default), lmdb: '
                        'the databases <datadir>/<split>.lmdb written by tools/build_lmdb.py '
                        '(same list files), video: the video files named in the list files, '
                        'decoded with PyAV (no extraction step)')
    d.add_argument('--use_lmdb', action='store_true', help='the same as --storage lmdb')
    d.add_argument('--video_backend', default='frames', choices=['frames', 'pyav'],
                   help='pyav: the same as --storage video')
    d.add_argument('--video_short_side', default=D['video_short_side'], type=int,
                   help='--storage video: resize decoded frames to this shorter side first, as '
                        'tools/extract_frames.py --short_side does (0: decoded size)')
    d.add_argument('--exclude_list', default=None, type=str, nargs='+',
                   help='files of videos to leave out: the bad-entries files of '
                        'tools/check_dataset.py (a list line, a tab, the reason), list files, or '
                        'one video path a line; <list>.bad.txt (train.bad.txt) leaves videos out '
                        'of that list only, any other file out of every split')
    d.add_argument('--image_tmpl', default=None, type=str,
                   help="frame file names in the video folders (default: the dataset's, "
                        "{:05d}.jpg), e.g. '{:05d}.png'")
    d.add_argument('--allow_outside_root', action='store_true',
                   help='let list files name videos outside --datadir (absolute paths, or .. '
                        'above it); without it such a line is an error naming it')
    d.add_argument('-j', '--workers', default=D['workers'], type=int,
                   help=('data loading processes per node, split among its processes'
                         if distributed else 'data loading processes')
                   + '; at most the CPUs this process may use, unless --no_worker_cap')
    d.add_argument('--no_worker_cap', action='store_true',
                   help='start -j workers even when they outnumber the CPUs')
    d.add_argument('--max_bad_ratio', default=D['max_bad_ratio'], type=float,
                   help='stop when more than this fraction of an epoch\'s videos cannot be read '
                        '(unreadable ones are replaced and counted up to then)')
    d.add_argument('--max_pixels', default=D['max_pixels'], type=int,
                   help='the most pixels (width x height) a frame may declare; a larger one '
                        '(a decompression bomb, a damaged header) is an unreadable frame. The '
                        'default is 8K DCI, 8192 x 4320')

    t = p.add_argument_group('training')
    t.add_argument('-b', '--batch-size', default=D['batch_size'], type=int,
                   help='GLOBAL batch: clips per iteration summed over all processes of all '
                        'nodes, split evenly among them (an error if it does not divide)'
                   if distributed else 'clips per iteration (train.py: across all GPUs)')
    t.add_argument('--lr', default=D['lr'], type=float, help='initial learning rate')
    t.add_argument('--lr_scheduler', default=D['lr_scheduler'],
                   choices=['step', 'multisteps', 'cosine', 'plateau'], help='learning-rate schedule')
    t.add_argument('--lr_steps', default=list(D['lr_steps']), type=float, nargs='+',
                   help='step: decay every lr_steps[0] epochs; multisteps: epochs to decay at')
    t.add_argument('--warmup_epochs', default=D['warmup_epochs'], type=float,
                   help='warm-up: over the first W epochs (fractions allowed) step k of the N = '
                        'W x batches-an-epoch steps takes (k + 1) / N of the schedule\'s lr; 0: '
                        'none')
    t.add_argument('--momentum', default=D['momentum'], type=float, help='SGD momentum')
    t.add_argument('--nesterov', action='store_true', help='Nesterov momentum')
    t.add_argument('--weight-decay', '--wd', default=D['weight_decay'], type=float, help='weight decay')
    t.add_argument('--epochs', default=D['epochs'], type=int, help='epochs to train')
    t.add_argument('--start-epoch', default=D['start_epoch'], type=int,
                   help='epoch to start at (overridden by --resume)')
    t.add_argument('--resume', default=D['resume'], type=str,
                   help='checkpoint to resume from (model, optimizer, scheduler, epoch, RNG, '
                        'place in the epoch); auto: the run folder\'s checkpoint.pth.tar if '
                        'there is one, else start the run (the default for a job that torchrun '
                        '--max-restarts or a SLURM requeue started again)')
    t.add_argument('--save_every', default=D['save_every'], type=int,
                   help='also write checkpoint.pth.tar every N training iterations (atomic; '
                        'resuming it continues mid-epoch with the same remaining clips); '
                        '0: at the end of each epoch only')
    t.add_argument('--pretrained', default=None, type=str,
                   help='weights to start from (train.py) or to evaluate (test.py)')
    t.add_argument('--trust_checkpoint', action='store_true',
                   help='load --pretrained/--resume/--imagenet_weights files that need full '
                        'unpickling (other objects than tensors and plain types): this RUNS '
                        'CODE stored in the file; give it only for files you made or trust')
    t.add_argument('--no_imagenet_pretrained', action='store_true',
                   help='train from scratch instead of from ImageNet 2D weights')
    t.add_argument('--imagenet_weights', default=None, type=str,
                   help='local file of the ImageNet 2D weights (default: the torch hub cache)')
    t.add_argument('--clip_gradient', '--cg', default=None, type=float,
                   help='clip the gradient norm to this value')
    t.add_argument('--amp', action='store_true',
                   help='mixed precision: fp16 autocast with a gradient scaler on CUDA (see '
                        '--amp_dtype); bf16 autocast on a CPU that computes bf16 natively '
                        '(AVX512-BF16 or AMX), fp32 with a note on other CPUs')
    t.add_argument('--amp_dtype', default=D['amp_dtype'], choices=['fp16', 'bf16'],
                   help='the autocast type: CUDA fp16 (default, with a gradient scaler) or bf16; '
                        'on the CPU, bf16 forces bf16 autocast even where it is emulated (slow)')
    t.add_argument('--seed', default=Config.seed, type=int, help='random seed')
    t.add_argument('-e', '--evaluate', action='store_true',
                   help='train.py: only evaluate --pretrained/--resume on the validation set')

    r = p.add_argument_group('runtime')
    r.add_argument('--device', default=D['device'], choices=['auto', 'cpu', 'cuda'],
                   help='auto picks CUDA when available')
    r.add_argument('--gpu', default=None, type=int,
                   help='GPU id to use (default: all visible GPUs with DataParallel)')
    r.add_argument('--channels_last', action='store_true',
                   help='channels_last weights and inputs (faster with --amp on CPU and CUDA)')
    r.add_argument('--compile', nargs='?', const='inductor', default=D['compile'],
                   metavar='BACKEND',
                   help='torch.compile the model (backend inductor unless named; aot_eager '
                        'checks the graph capture without compiling kernels)')
    r.add_argument('--system_malloc', action='store_true',
                   help='CPU: keep glibc\'s default allocation instead of reusing freed memory '
                        '(slower: large buffers are mapped from the OS again every step)')
    r.add_argument('--disable_cudnn_benchmark', action='store_true',
                   help='turn off cudnn autotuning (for exact reproducibility on GPU)')
    r.add_argument('--logdir', default=D['logdir'], type=str,
                   help='where logs, checkpoints and scores go (under <logdir>/<arch_name>/)')
    r.add_argument('--print-freq', '-p', default=D['print_freq'], type=int,
                   help='iterations between lines in the text log')

    e = p.add_argument_group('evaluation (test.py)')
    e.add_argument('--num_crops', default=D['num_crops'], type=int, choices=[1, 3, 5, 10],
                   help='spatial crops per clip: 1 centre, 3 left/centre/right, '
                        '5 corners+centre, 10 = 5 and their flips')
    e.add_argument('--num_clips', default=D['num_clips'], type=int, help='clips per video')
    e.add_argument('--eval_split', default=D['eval_split'], choices=['val', 'test'],
                   help='test.py: the list to evaluate (the original test.py took the test list '
                        'unless -e was given)')
    e.add_argument('--view_fusion', default=D['view_fusion'], choices=['logits', 'softmax'],
                   help='how the views of a video are combined into its scores: logits '
                        'averages their logits (as the original test.py; the score files hold '
                        'mean logits), softmax averages their class probabilities (score rows '
                        'sum to 1); the loss reported is the cross-entropy of the fused scores')

    dist = p.add_argument_group('distributed (train_dist.py)')
    dist.add_argument('--sync-bn', action='store_true', help='SyncBatchNorm (CUDA only)')
    dist.add_argument('--world-size', default=D['world_size'], type=int, help='number of nodes (see train_dist.py)')
    dist.add_argument('--rank', default=D['rank'], type=int, help='node rank')
    dist.add_argument('--dist-url', default=D['dist_url'], type=str,
                      help='rendezvous address')
    dist.add_argument('--dist-backend', default=None, type=str,
                      help='nccl on CUDA, gloo on CPU by default')
    dist.add_argument('--multiprocessing-distributed', action='store_true',
                      help='spawn one process per GPU on this node')
    return p


def parse_config(parser: argparse.ArgumentParser, argv=None, entrypoint: str = 'train',
                 from_checkpoint: tuple = ()) -> tuple[Config, list, argparse.Namespace]:
    """Parse the command line, validate it (`validate_args`) and freeze it into a Config;
    returns the config, the notes for the user and the namespace (for entrypoint actions such
    as --show_model). `from_checkpoint`: the options whose defaults a checkpoint gave
    (with_checkpoint_options), which count as given for the notes on omitted options."""
    args = parser.parse_args(argv)
    args.from_checkpoint = tuple(from_checkpoint)
    notes = validate_args(args, entrypoint)
    return Config.from_args(args), notes, args


def validate_args(args: argparse.Namespace, entrypoint: str = 'train') -> list:
    """Check option combinations; raise SystemExit with one line if invalid.

    Returns human-readable notes about options that are ignored in this configuration.
    """
    def fail(msg):
        raise SystemExit(f'error: {msg}')

    cfg = DATASET_CONFIG[args.dataset]
    check_numbers(args, fail)
    check_files(args, entrypoint, fail)
    if args.groups < 1 or args.frames_per_group < 1:
        fail('--groups and --frames_per_group must be at least 1')
    if args.num_clips < 1:
        fail('--num_clips must be at least 1')
    if args.batch_size < 1:
        fail('-b/--batch-size must be at least 1')
    if args.flow_length < 1:
        fail('--flow_length must be at least 1')
    storage = check_storage(args, fail)
    if args.image_tmpl is not None and not _names_frames(args.image_tmpl):
        fail(f"--image_tmpl {args.image_tmpl!r} does not name numbered frames; give a template "
             f"like '{{:05d}}.jpg' (00001.jpg) or '{{:05d}}.png'")
    if args.num_crops == 10 and not cfg['flip']:
        fail(f'--num_crops 10 includes flipped crops, which change the labels of '
             f'--dataset {args.dataset}; use 1, 3 or 5')
    if args.lr_scheduler == 'step' and len(args.lr_steps) != 1:
        fail('--lr_scheduler step takes one --lr_steps value (the step size in epochs)')
    if args.lr_scheduler in ('step', 'multisteps') and any(s != int(s) or s < 1
                                                             for s in args.lr_steps):
        # Fractional epochs would decay at different epochs under different torch versions.
        fail('--lr_steps takes whole numbers of epochs (at least 1)')
    channels = 3 if args.modality == 'rgb' else 2 * args.flow_length
    for name in ('mean', 'std'):
        v = getattr(args, name)
        if v is not None and len(v) not in (1, channels):
            fail(f'--{name} takes 1 or {channels} values for {args.modality} input '
                 f'(--flow_length {args.flow_length}), got {len(v)}' if args.modality == 'flow'
                 else f'--{name} takes 1 or 3 values for rgb input, got {len(v)}')
    if args.blending_frames < 1 and args.temporal_module_name == 'TAM':
        fail('--blending_frames must be at least 1 for TAM')
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            fail('--device cuda was asked for but CUDA is not available')

    notes = original_default_notes(args, entrypoint)
    workers = capped_workers(args.workers, args.no_worker_cap)   # what Config.from_args takes
    if workers < args.workers:
        notes.append(f'-j {args.workers} is more than the {workers} CPUs this process may use: '
                     f'starting {workers} workers (--no_worker_cap starts {args.workers})')
    if args.modality == 'rgb' and args.flow_length != FLOW_LENGTH:
        notes.append('--flow_length is ignored for rgb input')
    if storage != 'video' and args.video_short_side:
        notes.append('--video_short_side is ignored without --storage video')
    notes += ignored_model_options(args)
    if args.threed_data:
        notes.append('--threed_data is ignored: every model takes (B, C, T, H, W)')
    if args.sync_bn and entrypoint != 'train_dist':
        notes.append('--sync-bn is ignored outside train_dist.py')
    if entrypoint == 'train' and (args.num_crops != 1 or args.num_clips != 1):
        notes.append('--num_crops/--num_clips are used by test.py; train.py validates '
                     'one centre crop of one clip')
    if entrypoint == 'test' and args.resume:
        notes.append('--resume is ignored by test.py; pass the checkpoint with --pretrained')
    if entrypoint == 'test' and 'logdir' in getattr(args, 'given_options', ()):
        notes.append('--logdir is ignored by test.py: it writes next to the checkpoint, or to '
                     '--output DIR')
    return notes


def original_default_notes(args: argparse.Namespace, entrypoint: str) -> list:
    """Notes for the options the command line omitted (`given_options`, see OptionParser) whose
    default here gives another experiment than the original code's default; none for a
    namespace that was not parsed by `arg_parser`."""
    given = getattr(args, 'given_options', None)
    if given is None:
        return []
    given = [*given, *getattr(args, 'from_checkpoint', ())]
    notes = [f'--{name} was not given: it is {getattr(args, name)} here; the original code '
             f'took {value}' for name, value in ORIGINAL_DEFAULTS.items() if name not in given]
    if entrypoint == 'test' and 'eval_split' not in given and not args.evaluate:
        notes.append('--eval_split was not given: test.py evaluates the val list here; the '
                     'original test.py evaluated the test list unless -e was given')
    if (entrypoint != 'test' and args.augmentor_ver == 'v2' and 'scale_range' not in given
            and args.input_size != 224):
        notes.append('--scale_range was not given: augmentor v2 scales [256, 320] by '
                     '--input_size/224 here; the original code took [256, 320] for every size')
    if args.random_sampling:
        notes.append('--random_sampling here draws an independent training offset per segment '
                     'and evaluation stays deterministic; in the original code it made the '
                     'evaluation clips random instead')
    return notes


def _names_frames(tmpl: str) -> bool:
    """Whether a frame template gives different names to frames 1 and 2."""
    try:
        return tmpl.format(1) != tmpl.format(2)
    except (IndexError, KeyError, ValueError):
        return False


def check_storage(args: argparse.Namespace, fail) -> str:
    """The storage --storage, --use_lmdb and --video_backend pyav name (one kind, however
    spelled); an error for two different ones or a combination it cannot read."""
    asked = {k for k in (args.storage, 'lmdb' if args.use_lmdb else None,
                         'video' if args.video_backend == 'pyav' else None) if k}
    if len(asked) > 1:
        fail(f'--storage/--use_lmdb/--video_backend name different storages '
             f'({", ".join(sorted(asked))}); give one')
    storage = asked.pop() if asked else 'folders'
    if storage == 'video' and args.modality == 'flow':
        fail('--storage video (--video_backend pyav) reads rgb video files; it does not combine '
             'with --modality flow')
    return storage


def ignored_model_options(args: argparse.Namespace) -> list:
    """Notes for the model options given another value than their default that the family
    (models.registry: what it reads) or the temporal module do not read."""
    fam = family(args.backbone_net)
    defaults = ModelConfig.family_option_defaults()
    temporal = args.temporal_module_name or 'TSN'
    notes = []
    if not fam.is_2d and args.temporal_module_name is not None:
        notes.append(f'--temporal_module_name is ignored by {fam.name} (a 3D model)')
    for name, options in TEMPORAL_OPTIONS.items():
        unread = [o for o in options if name != temporal and getattr(args, o) != defaults[o]]
        if unread:
            notes.append(f'{"/".join("--" + o for o in unread)} '
                         f'{"is" if len(unread) == 1 else "are"} ignored without {name}')
    temporal_opts = {o for opts in TEMPORAL_OPTIONS.values() for o in opts}
    for option, default in defaults.items():
        if (option in temporal_opts or option == 'temporal_module_name' or fam.reads(option)
                or getattr(args, option) == default):
            continue
        flag = '-d/--depth' if option == 'depth' else f'--{option}'
        why = fam.ignored.get(option)
        notes.append(f'{flag} is ignored by {fam.name}' + (f' ({why})' if why else ''))
    return notes


# (option, attribute, lowest, lowest allowed?, highest or None, highest allowed?)
NUMBER_RANGES = [
    ('--lr', 'lr', 0, False, None, True),
    ('--momentum', 'momentum', 0, True, 1, True),
    ('--weight-decay', 'weight_decay', 0, True, None, True),
    ('--dropout', 'dropout', 0, True, 1, False),
    ('--epochs', 'epochs', 1, True, None, True),
    ('--warmup_epochs', 'warmup_epochs', 0, True, None, True),
    ('--start-epoch', 'start_epoch', 0, True, None, True),
    ('-j/--workers', 'workers', 0, True, None, True),
    ('-b/--batch-size', 'batch_size', 1, True, None, True),
    ('--input_size', 'input_size', 1, True, None, True),
    ('--clip_gradient', 'clip_gradient', 0, False, None, True),
    ('--max_bad_ratio', 'max_bad_ratio', 0, True, 1, True),
    ('--max_pixels', 'max_pixels', 1, True, None, True),
    ('--print-freq', 'print_freq', 1, True, None, True),
    ('--save_every', 'save_every', 0, True, None, True),
    ('--shift_div', 'shift_div', 1, True, None, True),
    ('--video_short_side', 'video_short_side', 0, True, None, True),
    ('--seed', 'seed', 0, True, None, True),
    ('--gpu', 'gpu', 0, True, None, True),
    ('--dist_timeout', 'dist_timeout', 1, True, None, True),
    ('--nproc_per_node', 'nproc_per_node', 1, True, None, True),
]


def _wanted(low, low_ok, high, high_ok) -> str:
    lower = f'{low} or more' if low_ok else f'a value above {low}'
    if high is None:
        return lower
    return f'{lower} and {"at most" if high_ok else "below"} {high}'


def check_numbers(args: argparse.Namespace, fail) -> None:
    """Impossible numbers are one-line errors before anything runs (a negative -j, lr or
    epoch count would otherwise fail deep inside torch, or train nothing)."""
    import math
    if args.epochs == 0:
        fail('--epochs 0 trains nothing; give 1 or more (-e evaluates without training)')
    for option, name, low, low_ok, high, high_ok in NUMBER_RANGES:
        value = getattr(args, name, None)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            fail(f'{option} {value} is not a number; give a finite value')
        if (value < low or (value == low and not low_ok)
                or (high is not None and (value > high or (value == high and not high_ok)))):
            fail(f'{option} {value:g} is impossible; give {_wanted(low, low_ok, high, high_ok)}')
    if args.lr_scheduler == 'multisteps' and any(s < 1 for s in args.lr_steps):
        fail('--lr_steps takes epochs of at least 1')
    if args.scale_range is not None and not 0 < args.scale_range[0] <= args.scale_range[1]:
        fail(f'--scale_range {args.scale_range[0]} {args.scale_range[1]} must be a positive '
             f'range, the smaller side first')
    if args.std is not None and any(v <= 0 for v in args.std):
        fail('--std values must be above 0')
    if args.start_epoch >= args.epochs and not args.resume and not args.evaluate:
        fail(f'--start-epoch {args.start_epoch} leaves nothing to train with --epochs '
             f'{args.epochs}; give a larger --epochs')


def check_files(args: argparse.Namespace, entrypoint: str, fail) -> None:
    """The files the command line names exist (before any data is generated or read). Only
    those it gave (`given_options`): tools/export_weights.py fills the others from a
    checkpoint's stored options, which may name files of another machine."""
    given = getattr(args, 'given_options', None)
    for option, name in (('--pretrained', 'pretrained'), ('--resume', 'resume'),
                         ('--imagenet_weights', 'imagenet_weights'),
                         ('--exclude_list', 'exclude_list')):
        value = getattr(args, name)
        if ((entrypoint == 'test' and name == 'resume') or (given is not None and name not in given)
                or (name == 'resume' and value == 'auto')):
            continue                          # (test.py ignores --resume; a note says so)
        for path in [value] if isinstance(value, str) or not value else value:
            if path and not os.path.isfile(path):
                what = 'is a folder, not a file' if os.path.isdir(path) else 'does not exist'
                fail(f'{option} {path} {what}; check the path')


# ----------------------------------------------------------------------------- a checkpoint's options

# test.py, tools/predict.py and tools/export_weights.py read the options a checkpoint stores
# (its `args`) as the defaults of the command line, so that `--pretrained FILE` alone evaluates
# the model it holds. A given option that differs from the stored one is refused where it
# changes the model the weights make (SHAPING_OPTIONS, when the family reads it), and a note
# otherwise: the data and evaluation choices (every model pools globally, so any input size
# runs; another --dataset with the same classes is a choice too).
SHAPING_OPTIONS = ('backbone_net', 'depth', 'temporal_module_name', 'blending_frames',
                   'blending_method', 'no_dw_conv', 'shift_div', 'dw_t_conv', 'without_t_stride',
                   'pooling_method', 'groups', 'frames_per_group', 'dense_sampling', 'modality',
                   'flow_length')
FOLLOWED_OPTIONS = ('dataset', 'datadir', 'image_tmpl', 'input_size', 'disable_scaleup', 'mean',
                    'std', 'dropout')
MAX_CLASSES = 100_000          # more than any dataset's classes (ImageNet-21k: 21,841)


def stored_options(content) -> dict:
    """The `args` a checkpoint holds (a dict, or an argparse.Namespace in older files); {} if
    none (the original study's release, torchvision's files, or something else)."""
    stored = content.get('args') if isinstance(content, dict) else None
    if isinstance(stored, argparse.Namespace):
        stored = vars(stored)
    return dict(stored) if isinstance(stored, dict) else {}


def _as_option(action: argparse.Action, value):
    """`value` as the command line would give option `action` (its type and choices), or
    ValueError: a stored option is untrusted input."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError('not true or false')
        return value
    if value is None:
        if action.default is not None:
            raise ValueError('empty')
        return None
    convert = action.type or str
    if action.nargs in ('+', '*'):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError('not a list of values')
        values = [_one_value(convert, v) for v in value]
    else:
        values = [_one_value(convert, value)]
    if action.choices is not None and any(v not in action.choices for v in values):
        raise ValueError(f'not one of {", ".join(map(str, action.choices))}')
    return values if action.nargs in ('+', '*') else values[0]


def _one_value(convert, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'a {type(value).__name__}')
    if convert is int and not (isinstance(value, int) or (isinstance(value, str)
                                                          and value.lstrip('-').isdigit())):
        raise ValueError('not a whole number')
    return convert(value)


def stored_classes(stored: dict, source: str) -> int | None:
    """The number of classes a checkpoint's options give, if any, bounded as a dataset's."""
    value = stored.get('num_classes')
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CLASSES:
        raise UserError(f'{source}: its stored num_classes {value!r} is not a number of classes '
                        f'(1 to {MAX_CLASSES:,}); give the classes on the command line')
    return value


def with_checkpoint_options(parser: argparse.ArgumentParser, stored: dict, source: str,
                            entrypoint: str = 'test') -> list:
    """Make a checkpoint's stored options (SHAPING_OPTIONS and FOLLOWED_OPTIONS) the defaults
    of `parser`, each checked as a command line's (type, choices, then validate_args'
    ranges): a value the command line could not give is one error line naming `source`.
    Returns the stored values taken, for `checkpoint_conflicts`."""
    actions = {a.dest: a for a in parser._actions}
    taken = {}
    for name in SHAPING_OPTIONS + FOLLOWED_OPTIONS:
        if name in stored and name in actions:
            try:
                taken[name] = _as_option(actions[name], stored[name])
            except (TypeError, ValueError) as exc:
                raise UserError(f'{source}: its stored option --{name} {stored[name]!r} is not '
                                f'valid ({exc}); give --{name} on the command line') from None
    parser.set_defaults(**taken)
    try:
        validate_args(parser.parse_args([]), entrypoint)
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            raise
        why = str(exc.code).removeprefix('error: ')
        raise UserError(f'{source}: its stored options are not valid ({why}); give the model '
                        f'options on the command line') from None
    return taken


def checkpoint_conflicts(args: argparse.Namespace, taken: dict, source: str) -> list:
    """Notes for the given options that differ from the checkpoint's stored ones (`taken`);
    a UserError naming both values for one that changes the model the weights make."""
    given = set(getattr(args, 'given_options', ()))
    fam = family(args.backbone_net)
    temporal = {o for opts in TEMPORAL_OPTIONS.values() for o in opts}
    model_fields = set(ModelConfig.family_option_defaults())
    notes = []
    for name in sorted(given & set(taken)):
        ours, theirs = getattr(args, name), taken[name]
        if ours == theirs or (isinstance(theirs, list) and list(ours or []) == theirs):
            continue
        reads = (name not in model_fields or fam.reads(name)
                 or (name in temporal and name in TEMPORAL_OPTIONS.get(
                     args.temporal_module_name or 'TSN', ())))
        flag = '-d/--depth' if name == 'depth' else f'--{name}'
        if name in SHAPING_OPTIONS and reads:
            raise UserError(f'{flag} {ours} differs from the {theirs} that {source} was trained '
                            f'with, and it changes the model the weights make; drop {flag} (the '
                            f'checkpoint gives it)')
        notes.append(f'{flag} {ours}: {source} was trained with {theirs}')
    return notes
