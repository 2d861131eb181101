"""The training and evaluation engine shared by train.py, train_dist.py and test.py.

The entrypoints only decide how processes start and hand a `Runtime` to `fit` (training) or
to `evaluate` (test.py). Everything else lives here: data loaders, the train/validate loops,
metrics, mixed precision, schedulers, checkpoints and logging.
"""
import copy
import functools
import os
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from models import build_model, count_conv_macs, count_params, load_imagenet, load_pretrained
from models.weights import imagenet_family
from utils.checkpoint import resume, save_checkpoint
from utils.errors import UserError, reading_user_files, set_resume_checkpoint
from utils.dataset_config import get_dataset_config
from utils.list_file import read_categories
from utils.runtime import Runtime
from utils.run_log import RunLog, attach_warnings, current_log_path, make_folder
from utils.storage import FrameReadError
from utils.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from utils.video_dataset import build_dataset, clip_length, input_channels


def keep_freed_memory() -> bool:
    """Make glibc serve large allocations from the heap and keep freed memory for reuse.

    By default glibc maps large allocations (a float batch of clips, a layer's activations)
    fresh from the OS and unmaps them on free, so each step page-faults the same memory in
    again (the allocators PyTorch's CPU tuning guide suggests, jemalloc and tcmalloc, reuse
    memory the same way). DataLoader workers inherit the setting. The README's Speed section
    has the measured effect (tools/benchmark.py model ... with and without --system_malloc).
    Returns False where it does not apply (not glibc).
    """
    import ctypes
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4          # mallopt parameters (malloc.h)
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2 ** 30))


def setup_process(args, device: torch.device) -> None:
    """Per-process speed settings for these options: the CPU allocator (see keep_freed_memory)."""
    if device.type == 'cpu' and not args.system_malloc:
        keep_freed_memory()


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """channels_last weights: 4-D for 2-D convs, channels_last_3d for 3-D convs."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def select_device(args) -> torch.device:
    """--device auto picks CUDA when present; --gpu picks one GPU."""
    use_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    if not use_cuda:
        return torch.device('cpu')
    torch.backends.cudnn.benchmark = not args.disable_cudnn_benchmark
    return torch.device('cuda', args.gpu if args.gpu is not None else 0)


# ----------------------------------------------------------------------------- data and model

def prepare_data(args, runtime: Runtime | None = None) -> None:
    """Generate the synthetic dataset if asked for and missing, and set args.num_classes."""
    cfg = get_dataset_config(args.dataset)
    lists_missing = not os.path.isfile(os.path.join(args.datadir, cfg['train_list']))
    if args.dataset == 'synthetic' and lists_missing and not may_generate_synthetic(args):
        # A mistyped --datadir must not become a freshly generated dataset and a silent run.
        state = 'does not exist' if not os.path.exists(args.datadir) else \
            f'has no {cfg["train_list"]}'
        raise UserError(f'--datadir {args.datadir} {state}; check the path, or pass '
                        f'--make_synthetic to generate the synthetic dataset there')
    if args.dataset == 'synthetic' and lists_missing and (runtime is None or runtime.is_main):
        # The generator writes the lists last, so a killed generation is redone here.
        from tools.make_synthetic_dataset import ensure_synthetic_dataset
        ensure_synthetic_dataset(args.datadir, modality=args.modality)
    if args.dataset == 'synthetic':
        from tools.make_synthetic_dataset import dataset_modality
        found = dataset_modality(args.datadir)
        if found is not None and found != args.modality:
            raise SystemExit(f'error: {args.datadir} holds the synthetic dataset as {found}, '
                             f'not {args.modality}: pick another --datadir (e.g. '
                             f'data/synthetic_{args.modality}) to generate it there')
    if runtime is not None and runtime.distributed:
        torch.distributed.barrier()          # the others wait for the main process's data
    if not os.path.isdir(args.datadir):
        raise SystemExit(f'error: --datadir {args.datadir} does not exist (expected the list '
                         f'files {cfg["train_list"]}, {cfg["val_list"]} and the frame folders)')
    args.num_classes = num_classes_of(args)


SYNTHETIC_DIRS = ('data/synthetic', 'data/synthetic_flow')   # the README's quickstart folders


def may_generate_synthetic(args) -> bool:
    """Generate the synthetic dataset only where asked for: at the documented folders
    (SYNTHETIC_DIRS, relative to the working directory) or with --make_synthetic."""
    return (getattr(args, 'make_synthetic', False)
            or os.path.normpath(args.datadir) in SYNTHETIC_DIRS)


def num_classes_of(args) -> int:
    """Classes of the dataset: from its configuration, or counted in its label file."""
    cfg = get_dataset_config(args.dataset)
    if cfg['num_classes'] is not None:
        return cfg['num_classes']
    label_file = os.path.join(args.datadir, cfg['label_file'])
    if os.path.isfile(label_file):
        return len(read_categories(label_file))
    if args.dataset == 'synthetic':
        from tools.make_synthetic_dataset import CLASS_NAMES
        return len(CLASS_NAMES)
    raise SystemExit(f'error: cannot tell the number of classes: {label_file} is missing')


def build(args) -> tuple[torch.nn.Module, str]:
    """The model for these options, its time dimension set to the clip length."""
    model_args = copy.copy(args)
    model_args.groups = clip_length(args)
    model_args.input_channels = input_channels(args)
    return build_model(model_args)


def run_name(args, arch: str) -> str:
    """The folder under --logdir that holds a run's logs, checkpoints and scores."""
    sampling = 'dense' if args.dense_sampling else 'uniform'
    modality = f'flow{args.flow_length}' if args.modality == 'flow' else args.modality
    return f'{args.dataset}-{modality}-{arch}-{sampling}-f{clip_length(args)}'


def describe_model(model: torch.nn.Module, args) -> str:
    """The model, its parameter count and conv MACs for one clip (what --show_model prints)."""
    params = count_params(model)
    macs = count_conv_macs(model, clip_length(args), args.input_size, input_channels(args))
    return (f'{model}\nparameters: {params:,}\nconv MACs for one {clip_length(args)}x'
            f'{args.input_size}x{args.input_size} clip: {macs:,} ({macs / 1e9:.2f} GFLOPs)')


def make_loader(dataset, args, runtime: Runtime, train: bool, batch_size: int) -> DataLoader:
    sampler = None
    if runtime.distributed:
        from utils.distributed import make_sampler
        sampler = make_sampler(dataset, runtime, train)
    log_path = current_log_path()           # workers' warnings (unreadable videos) to log.txt
    init = functools.partial(attach_warnings, log_path) if log_path and args.workers else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None,
                      sampler=sampler, num_workers=args.workers, drop_last=train,
                      pin_memory=runtime.device.type == 'cuda',
                      generator=torch.Generator() if train else None,
                      worker_init_fn=init)


# The original's defaults per family (its models' mean()/std()): the ResNet-based ones use
# ImageNet's statistics (RGB order), flow 0.5 and the mean of ImageNet's stds; the
# Inception-based ones (GoogLeNet weights expect inputs in [-1, 1]) use 0.5 for both.
RESNET_FLOW_MEAN, RESNET_FLOW_STD = 0.5, float(np.mean(IMAGENET_STD))
INCEPTION_MEAN, INCEPTION_STD = 0.5, 0.5


def input_stats(args) -> tuple[list, list]:
    """Per-channel mean and std (0-1 scale, RGB order) for normalising clips, one value per
    input channel: --mean/--std (one value applies to every channel), else the original's
    default for the backbone family and modality (r3d, mc3 and r2plus1d, which it did not
    have, take the ResNet family's)."""
    channels = input_channels(args)
    rgb = args.modality == 'rgb'
    if imagenet_family(args.backbone_net) == 'inception':
        mean, std = [INCEPTION_MEAN], [INCEPTION_STD]
    else:
        mean = list(IMAGENET_MEAN) if rgb else [RESNET_FLOW_MEAN]
        std = list(IMAGENET_STD) if rgb else [RESNET_FLOW_STD]
    mean, std = args.mean or mean, args.std or std
    return ([mean[0]] * channels if len(mean) == 1 else list(mean),
            [std[0]] * channels if len(std) == 1 else list(std))


# ----------------------------------------------------------------------------- loops

def autocast(args, device: torch.device):
    """bf16 autocast on CPU; fp16 (with a grad scaler) or bf16 on CUDA; nothing without --amp."""
    if not args.amp:
        return nullcontext()
    dtype = torch.bfloat16 if device.type == 'cpu' or args.amp_dtype == 'bf16' else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Number of samples whose label is among the top-k scores, for each k (capped at classes)."""
    maxk = min(max(ks), scores.shape[1])
    top = scores.topk(maxk, dim=1).indices
    hit = top.eq(labels[:, None])
    return [int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in ks]


class Totals:
    """Sums over an epoch (never averages of averages), so they reduce exactly across ranks."""
    keys = ('loss_sum', 'correct1', 'correct5', 'count', 'bad', 'seen')

    def __init__(self):
        self.values = dict.fromkeys(self.keys, 0.0)

    def add(self, **kw):
        for k, v in kw.items():
            self.values[k] += float(v)

    def reduce(self, runtime: Runtime) -> 'Totals':
        if runtime.distributed:
            from utils.distributed import all_reduce_sum
            reduced = all_reduce_sum([self.values[k] for k in self.keys], runtime)
            self.values = dict(zip(self.keys, reduced))
        return self

    def summary(self) -> dict:
        n = max(self.values['count'], 1)
        return dict(loss=self.values['loss_sum'] / n, top1=100.0 * self.values['correct1'] / n,
                    top5=100.0 * self.values['correct5'] / n, count=int(self.values['count']),
                    bad=int(self.values['bad']))


def train_one_epoch(model, loader, optimizer, scaler, args, runtime: Runtime, epoch: int,
                    log: RunLog) -> dict:
    model.train()
    mean, std = input_stats(args)
    totals = Totals()
    seen, data_time, t_start = 0, 0.0, time.time()
    t_data = time.time()
    bar = log.progress(loader, desc=f'train {epoch + 1}/{args.epochs}')
    for i, batch in enumerate(bar):
        clips = batch['clip'].to(runtime.device, non_blocking=True)
        labels = batch['label'].to(runtime.device, non_blocking=True)
        data_time += time.time() - t_data
        with autocast(args, runtime.device):
            logits = model(normalize(clips, mean, std, args.channels_last))
            loss = F.cross_entropy(logits.float(), labels)
        if not torch.isfinite(loss):
            raise UserError(f'the training loss is {loss.item()} at epoch {epoch + 1} iteration '
                            f'{i + 1} (diverged), --lr {args.lr}; lower --lr or use '
                            f'--clip_gradient')
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if args.clip_gradient is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_gradient)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

        n = labels.shape[0]
        c1, c5 = topk_correct(logits.detach(), labels)
        totals.add(loss_sum=loss.item() * n, correct1=c1, correct5=c5, count=n,
                   bad=batch['bad'].sum())
        seen += n
        elapsed = time.time() - t_start
        s = totals.summary()
        bar.set_postfix(loss=f'{s["loss"]:.3f}', top1=f'{s["top1"]:.1f}',
                        clips_s=f'{seen * runtime.world_size / elapsed:.1f}',
                        data=f'{data_time / (i + 1):.3f}s')
        if (i + 1) % args.print_freq == 0:
            log.info(f'epoch {epoch + 1} iter {i + 1}/{len(loader)} loss {s["loss"]:.4f} '
                     f'top1 {s["top1"]:.2f} clips/s {seen * runtime.world_size / elapsed:.1f} '
                     f'data {data_time / (i + 1):.3f}s', console=False)
        t_data = time.time()
    result = totals.reduce(runtime).summary()
    result['clips_per_s'] = seen * runtime.world_size / max(time.time() - t_start, 1e-9)
    result['data_time'] = data_time / max(len(loader), 1)
    limit = args.max_bad_ratio * len(loader.dataset)
    if result['bad'] > limit:
        where = current_log_path() or 'the warnings above'
        raise UserError(f'{result["bad"]} unreadable videos in epoch {epoch + 1} of '
                        f'{len(loader.dataset)} exceed --max_bad_ratio {args.max_bad_ratio}; '
                        f'their paths are in {where}: fix them, leave them out with '
                        f'--exclude_list (tools/check_dataset.py writes one), or raise '
                        f'--max_bad_ratio')
    return result


VIEW_FUSIONS = ('logits', 'softmax')


def fuse_views(logits: torch.Tensor, rule: str = 'logits') -> torch.Tensor:
    """(B, V, classes) logits of V views -> (B, classes) scores of each video: the mean of the
    logits (the original test.py's rule, the default) or the mean of the softmax probabilities."""
    if rule == 'logits':
        return logits.mean(dim=1)
    if rule == 'softmax':
        return logits.softmax(dim=2).mean(dim=1)
    raise ValueError(f'unknown view fusion {rule!r}; known: {", ".join(VIEW_FUSIONS)}')


def fused_loss(scores: torch.Tensor, labels: torch.Tensor, rule: str = 'logits') -> torch.Tensor:
    """Summed cross-entropy of fused scores: of the softmax of the mean logits, or minus the log
    of the mean probability. With one view both are the cross-entropy of its logits."""
    if rule == 'softmax':
        return F.nll_loss(scores.clamp_min(1e-12).log(), labels, reduction='sum')
    return F.cross_entropy(scores, labels, reduction='sum')


@torch.no_grad()
def evaluate(model, loader, args, runtime: Runtime, log: RunLog, desc: str = 'val',
             keep_scores: bool = False) -> dict:
    """Evaluate clips of (B, V, C, T, H, W) views, fused per video by `args.view_fusion`
    (`fuse_views`; 'logits' if unset, the original's rule).

    Returns loss/top1/top5 over the videos that could be read, the number skipped, and with
    keep_scores the per-video fused scores and labels ordered by dataset index. The scores are
    the mean logits (as the original's score files) or the mean probabilities (rows sum to 1);
    the loss is `fused_loss` of them, so with one view (training's validation) it is the
    cross-entropy under either rule, the value --lr_scheduler plateau steps on.
    """
    rule = getattr(args, 'view_fusion', 'logits')
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        # Evaluate the bare module: a DDP forward may start collectives, which would wait
        # forever on a rank whose shard has fewer (or no) batches. Rank 0's buffers first, so
        # every rank evaluates the model that rank 0 saves.
        from utils.distributed import broadcast_buffers
        broadcast_buffers(model.module)
        model = model.module
    model.eval()
    mean, std = input_stats(args)
    totals = Totals()
    scores_all, labels_all, index_all, bad_all = [], [], [], []
    for batch in log.progress(loader, desc=desc):
        clips = batch['clip']
        b, v = clips.shape[:2]
        views = clips.flatten(0, 1)
        logits = []
        for chunk in views.split(max(1, args.batch_size)):  # bounded memory for many views
            chunk = normalize(chunk.to(runtime.device, non_blocking=True), mean, std,
                              args.channels_last)
            with autocast(args, runtime.device):
                logits.append(model(chunk).float())
        scores = fuse_views(torch.cat(logits).view(b, v, -1), rule)
        labels = batch['label'].to(scores.device)
        ok = (batch['bad'] == 0).to(scores.device)
        labelled = ok & (labels >= 0)
        if labelled.any():
            p, y = scores[labelled], labels[labelled]
            loss = fused_loss(p, y, rule)
            c1, c5 = topk_correct(p, y)
            totals.add(loss_sum=loss.item(), correct1=c1, correct5=c5, count=int(labelled.sum()))
        totals.add(bad=int((~ok).sum()), seen=b)
        if keep_scores:
            scores_all.append(scores.cpu())
            labels_all.append(batch['label'])
            index_all.append(batch['index'])
            bad_all.append(batch['bad'])
    result = totals.reduce(runtime).summary()
    result['seen'] = int(totals.values['seen'])
    if keep_scores:
        result['scores'] = torch.cat(scores_all).numpy() if scores_all else np.zeros((0, 0))
        result['labels'] = torch.cat(labels_all).numpy() if labels_all else np.zeros(0, int)
        result['index'] = torch.cat(index_all).numpy() if index_all else np.zeros(0, int)
        result['bad_mask'] = torch.cat(bad_all).numpy() if bad_all else np.zeros(0, int)
        if runtime.distributed:              # every rank's videos, ordered by dataset index
            from utils.distributed import gather_by_index
            result.update(gather_by_index({k: result[k] for k in
                                           ('scores', 'labels', 'index', 'bad_mask')}))
    return result


# ----------------------------------------------------------------------------- training

def make_optimizer(model, args):
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                           nesterov=args.nesterov, weight_decay=args.weight_decay)


def make_scheduler(optimizer, args):
    """The original's per-epoch schedules, stepped once after each epoch's validation:
    step (x0.1 every lr_steps[0] epochs), multisteps (x0.1 at each of lr_steps), cosine
    (from --lr to 0 over --epochs) and plateau (x0.1 once the validation loss has not improved
    by a relative 1e-4 for more than 10 epochs; torch's defaults, as the original)."""
    if args.lr_scheduler == 'step':
        return torch.optim.lr_scheduler.StepLR(optimizer, int(args.lr_steps[0]), gamma=0.1)
    if args.lr_scheduler == 'multisteps':
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(s) for s in args.lr_steps],
                                                    gamma=0.1)
    if args.lr_scheduler == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs,
                                                          eta_min=0)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode='min', factor=0.1, patience=10, threshold=1e-4, threshold_mode='rel',
        cooldown=0, min_lr=0)


def seed_everything(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(args, runtime: Runtime, notes=()) -> dict:
    """Train and validate for args.epochs; returns the last validation result.

    What a user can get wrong is checked before the first epoch, in order of cost: the log
    folder (before generating data), the lists and storage with their labels, then the
    weights (--pretrained, ImageNet, --resume) and the epochs left to train."""
    seed_everything(args.seed)
    setup_process(args, runtime.device)
    if runtime.is_main:
        make_folder(args.logdir)
    prepare_data(args, runtime)
    if args.resume or args.pretrained or args.evaluate:
        args.no_imagenet_pretrained = True   # the checkpoint's weights replace them anyway
    model, arch = build(args)
    name = run_name(args, arch)
    folder = os.path.join(args.logdir, name)
    log = RunLog(folder, enabled=runtime.is_main)
    for note in notes:
        log.info(f'note: {note}')
    log.info(f'run {name}: {count_params(model):,} parameters, {args.num_classes} classes, '
             f'device {runtime.device}, logs in {folder}')
    with reading_user_files():              # train and val lists must be labelled (list_file)
        val_set = build_dataset(args, 'val', train=False)
        train_set = None if args.evaluate else build_dataset(args, 'train', train=True)
    if train_set is not None:
        # Each process gets len // world_size videos (DistributedSampler drops the rest), and
        # its loader drops an incomplete last batch.
        if len(train_set) // runtime.world_size < per_process_batch(args, runtime):
            raise UserError(f'{len(train_set)} training videos make no full batch of '
                            f'-b {args.batch_size}; lower -b')

    if args.pretrained:
        log.info(load_pretrained(model, args.pretrained, adapt_rgb_stem=True,
                                 trust=args.trust_checkpoint, new_classifier=not args.evaluate))
    elif not args.no_imagenet_pretrained:
        log.info(load_imagenet(model, imagenet_family(args.backbone_net), args.depth,
                               args.imagenet_weights, trust=args.trust_checkpoint))

    model = wrap_model(model, args, runtime)
    optimizer = make_optimizer(model, args)
    scheduler = make_scheduler(optimizer, args)
    use_scaler = args.amp and runtime.device.type == 'cuda' and args.amp_dtype == 'fp16'
    scaler = torch.amp.GradScaler('cuda') if use_scaler else None
    start_epoch, best_top1 = args.start_epoch, 0.0
    if args.resume:
        start_epoch, best_top1 = resume(args.resume, model, optimizer, scheduler, scaler,
                                        trust=args.trust_checkpoint, arch=arch, args=args)
        log.info(f'resumed from {args.resume} at epoch {start_epoch} (best top-1 {best_top1:.2f})')
        if start_epoch >= args.epochs and not args.evaluate:
            raise UserError(f'nothing to train: --resume {args.resume} has completed '
                            f'{start_epoch} epoch{"s" if start_epoch != 1 else ""} and --epochs '
                            f'is {args.epochs}; give a larger --epochs to train on')
        set_resume_checkpoint(args.resume)

    val_loader = make_loader(val_set, args, runtime, train=False, batch_size=args.batch_size)
    if args.evaluate:
        result = evaluate(model, val_loader, args, runtime, log)
        log.info(format_eval(result, 'val'))
        log.close()
        return result
    train_loader = make_loader(train_set, args, runtime, train=True,
                               batch_size=per_process_batch(args, runtime))

    result = {}
    best_path = os.path.join(folder, 'model_best.pth.tar')
    for epoch in range(start_epoch, args.epochs):
        # Everything random in an epoch derives from (seed, epoch): a resumed run repeats it.
        seed_everything(args.seed + epoch)
        train_set.set_epoch(epoch)
        train_loader.generator.manual_seed(args.seed + epoch)
        if hasattr(train_loader.sampler, 'set_epoch'):
            train_loader.sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]['lr']
        t0 = time.time()
        try:
            train = train_one_epoch(model, train_loader, optimizer, scaler, args, runtime,
                                    epoch, log)
        except FrameReadError as exc:         # a run of unreadable videos: wrong data
            raise UserError(f'{last_line(exc)}, epoch {epoch + 1}; check the data with '
                            f'tools/check_dataset.py') from None
        result = evaluate(model, val_loader, args, runtime, log)
        if args.lr_scheduler == 'plateau':
            scheduler.step(result['loss'])
        else:
            scheduler.step()
        # The first epoch of a run folder always writes model_best (test.py's input), even at
        # top-1 0; later ones only when top-1 improves.
        is_best = result['top1'] > best_top1 or not os.path.isfile(best_path)
        best_top1 = max(best_top1, result['top1'])
        log.info(f'epoch {epoch + 1}/{args.epochs} lr {lr:.5f} | train loss {train["loss"]:.4f} '
                 f'top1 {train["top1"]:.2f} ({train["clips_per_s"]:.1f} clips/s, data '
                 f'{train["data_time"]:.3f}s/it, {train["bad"]} unreadable replaced) | '
                 f'{format_eval(result, "val")} | best {best_top1:.2f} | {time.time() - t0:.0f}s')
        log.scalars({'loss': train['loss'], 'top1': train['top1'], 'top5': train['top5'],
                     'lr': lr, 'clips_per_s': train['clips_per_s']}, epoch + 1, 'train/')
        log.scalars({k: result[k] for k in ('loss', 'top1', 'top5')}, epoch + 1, 'val/')
        if runtime.is_main:
            save_checkpoint(folder, epoch=epoch + 1, arch=arch, model=model, optimizer=optimizer,
                            scheduler=scheduler, scaler=scaler, best_top1=best_top1,
                            is_best=is_best, args=args)
    log.info(f'done: best val top-1 {best_top1:.2f}; checkpoints in {folder}')
    log.close()
    result['best_top1'] = best_top1
    result['folder'] = folder
    return result


def last_line(exc: BaseException) -> str:
    """The message of an exception without a DataLoader worker's traceback around it."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.split(': ', 1)[1] if text.startswith(type(exc).__name__ + ': ') else text


def per_process_batch(args, runtime: Runtime) -> int:
    """-b is the global batch; each distributed process takes its share."""
    if runtime.distributed:
        if args.batch_size % runtime.world_size:
            raise SystemExit(f'error: -b {args.batch_size} does not divide among '
                             f'{runtime.world_size} processes')
        return args.batch_size // runtime.world_size
    return args.batch_size


def wrap_model(model, args, runtime: Runtime):
    """Move to the device; DataParallel over all visible GPUs when asked for in one process;
    DistributedDataParallel (with SyncBatchNorm on CUDA if --sync-bn) under distribution."""
    if runtime.distributed and args.sync_bn and runtime.device.type == 'cuda':
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(runtime.device)
    if args.channels_last:
        to_channels_last(model)
    if runtime.distributed:
        ids = [runtime.device.index] if runtime.device.type == 'cuda' else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if runtime.data_parallel:
        return torch.nn.DataParallel(model)
    return model


def format_eval(result: dict, split: str) -> str:
    text = (f'{split} loss {result["loss"]:.4f} top1 {result["top1"]:.2f} '
            f'top5 {result["top5"]:.2f} on {result["count"]} videos')
    if result.get('bad'):
        text += f' ({result["bad"]} unreadable videos skipped and NOT counted)'
    return text


def load_for_eval(args, runtime: Runtime):
    """A model with the weights of --pretrained (test.py checks that it is given), for test.py."""
    args.no_imagenet_pretrained = True
    model, arch = build(args)
    report = load_pretrained(model, args.pretrained, trust=args.trust_checkpoint,
                             new_classifier=False)   # a fresh classifier evaluates nothing
    return wrap_model(model, args, runtime), arch, report

