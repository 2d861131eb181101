"""The training and evaluation engine shared by train.py, train_dist.py and test.py.

The entrypoints only decide how processes start and hand a `Runtime` to `fit` (training) or
to `evaluate` (test.py). Everything else lives here: data loaders, the train/validate loops,
metrics, mixed precision, schedulers, checkpoints and logging.
"""
import functools
import itertools
import os
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler, Sampler

from models import build_model, count_conv_macs, count_params, family, load_imagenet, load_pretrained
from models.registry import temporal_module
from utils import distributed, run_folder, synthetic
from utils.checkpoint import BEST, CHECKPOINT, Resumed, resume, save_checkpoint, set_rng_state
from utils.clip_grid import MAX_CLIPS, clip_grid
from utils.config import Config, DataConfig, OptimConfig, RunConfig
from utils.errors import UserError, reading_user_files, set_resume_checkpoint
from utils.list_file import read_categories
from utils.runtime import Runtime, job_restart
from utils.run_log import RunLog, attach_warnings, current_log_path, make_folder
from utils.storage import FrameReadError
from utils.transforms import normalize
from utils.video_dataset import build_dataset


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


def setup_process(run: RunConfig, device: torch.device) -> None:
    """Per-process speed settings for these options: the CPU allocator (see keep_freed_memory)."""
    if device.type == 'cpu' and not run.system_malloc:
        keep_freed_memory()


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """channels_last weights: 4-D for 2-D convs, channels_last_3d for 3-D convs."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def select_device(run: RunConfig) -> torch.device:
    """--device auto picks CUDA when present; --gpu picks one GPU."""
    if run.gpu is not None and run.device != 'cpu':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if run.gpu >= count:
            raise UserError(f'--gpu {run.gpu} was asked for but this machine has '
                            + (f'{count} GPU{"s" * (count > 1)} (0-{count - 1})' if count
                               else 'no GPU that CUDA can use')
                            + '; drop --gpu to run on the CPU')
    use_cuda = run.device == 'cuda' or (run.device == 'auto' and torch.cuda.is_available())
    if not use_cuda:
        return torch.device('cpu')
    torch.backends.cudnn.benchmark = not run.disable_cudnn_benchmark
    return torch.device('cuda', run.gpu if run.gpu is not None else 0)


# ----------------------------------------------------------------------------- data and model

def prepare_data(cfg: Config, runtime: Runtime | None = None) -> Config:
    """Generate the synthetic dataset if asked for and missing; returns the config with the
    dataset's number of classes."""
    data = cfg.data
    lists = data.dataset_config
    lists_missing = not os.path.isfile(os.path.join(data.datadir, lists['train_list']))
    if data.dataset == 'synthetic' and lists_missing and not may_generate_synthetic(data):
        # A mistyped --datadir must not become a freshly generated dataset and a silent run.
        state = 'does not exist' if not os.path.exists(data.datadir) else \
            f'has no {lists["train_list"]}'
        raise UserError(f'--datadir {data.datadir} {state}; check the path, or pass '
                        f'--make_synthetic to generate the synthetic dataset there')
    if data.dataset == 'synthetic' and lists_missing and (runtime is None or runtime.is_main):
        # The generator writes the lists last, so a killed generation is redone here.
        synthetic.ensure_synthetic_dataset(data.datadir, modality=data.modality)
    if data.dataset == 'synthetic':
        found = synthetic.dataset_modality(data.datadir)
        if found is not None and found != data.modality:
            raise UserError(f'{data.datadir} holds the synthetic dataset as {found}, not '
                            f'{data.modality}: pick another --datadir (e.g. '
                            f'data/synthetic_{data.modality}) to generate it there')
    if runtime is not None and runtime.distributed:
        torch.distributed.barrier()          # the others wait for the main process's data
    if not os.path.isdir(data.datadir):
        raise UserError(f'--datadir {data.datadir} does not exist (expected the list files '
                        f'{lists["train_list"]}, {lists["val_list"]} and the frame folders)')
    return cfg.with_classes(num_classes_of(data))


SYNTHETIC_DIRS = ('data/synthetic', 'data/synthetic_flow')   # the README's quickstart folders


def may_generate_synthetic(data: DataConfig) -> bool:
    """Generate the synthetic dataset only where asked for: at the documented folders
    (SYNTHETIC_DIRS, relative to the working directory) or with --make_synthetic."""
    return data.make_synthetic or os.path.normpath(data.datadir) in SYNTHETIC_DIRS


def num_classes_of(data: DataConfig) -> int:
    """Classes of the dataset: from its configuration, or counted in its label file."""
    lists = data.dataset_config
    if lists['num_classes'] is not None:
        return lists['num_classes']
    label_file = os.path.join(data.datadir, lists['label_file'])
    if os.path.isfile(label_file):
        return len(read_categories(label_file))
    if data.dataset == 'synthetic':
        return len(synthetic.CLASS_NAMES)
    raise UserError(f'cannot tell the number of classes: {label_file} is missing')


def class_names(data: DataConfig) -> list[str]:
    """The dataset's class names in label order: its categories file, the synthetic
    dataset's own, else the label numbers."""
    label_file = os.path.join(data.datadir, data.dataset_config['label_file'])
    if os.path.isfile(label_file):
        return read_categories(label_file)
    if data.dataset == 'synthetic':
        return list(synthetic.CLASS_NAMES)
    return [str(c) for c in range(data.num_classes)]


def describe_run(cfg: Config, model: torch.nn.Module, arch: str, name: str) -> dict:
    """What a run is (its run.json): model, clip, size, cost, classes and options."""
    data = cfg.data
    return dict(name=name, arch=arch, backbone_net=cfg.model.backbone_net,
                temporal_module=temporal_module(cfg.model),
                frames=data.clip_length, input_size=data.input_size, modality=data.modality,
                params=count_params(model),
                conv_gmacs=count_conv_macs(model, data.clip_length, data.input_size,
                                           data.channels) / 1e9,
                num_classes=cfg.model.num_classes, classes=class_names(data),
                options=cfg.options)


def build(cfg: Config) -> tuple[torch.nn.Module, str]:
    """The model for these options (its time dimension is the clip length) and its arch name."""
    if not cfg.model.num_classes:
        raise ValueError('the number of classes is not known yet (Config.with_classes)')
    return build_model(cfg.model)


def run_name(cfg: Config, arch: str) -> str:
    """The folder under --logdir that holds a run's logs, checkpoints and scores."""
    data = cfg.data
    sampling = 'dense' if data.dense_sampling else 'uniform'
    modality = f'flow{data.flow_length}' if data.modality == 'flow' else data.modality
    return f'{data.dataset}-{modality}-{arch}-{sampling}-f{data.clip_length}'


def describe_model(model: torch.nn.Module, cfg: Config) -> str:
    """The model, its parameter count and conv MACs for one clip (what --show_model prints)."""
    t, size = cfg.data.clip_length, cfg.data.input_size
    params = count_params(model)
    macs = count_conv_macs(model, t, size, cfg.data.channels)
    return (f'{model}\nparameters: {params:,}\nconv MACs for one {t}x{size}x{size} clip: '
            f'{macs:,} ({macs / 1e9:.2f} GFLOPs)')


class SkipFirst(Sampler):
    """A sampler's indices after the first `skip` (0: all of them), so that an epoch resumed
    from a mid-epoch checkpoint sees exactly the clips it had left: the order is the same (the
    sampler's seed is the epoch's) and a clip depends only on (seed, epoch, video)."""

    def __init__(self, sampler: Sampler):
        self.sampler, self.skip = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


def make_loader(dataset, data: DataConfig, runtime: Runtime, train: bool, batch_size: int
                ) -> DataLoader:
    """The DataLoader of a dataset: shuffled by a seeded generator (training; `SkipFirst`
    lets a resumed epoch start where it stopped) or sharded by rank under distribution, pinned
    memory on CUDA, workers' warnings into the run's log."""
    generator = torch.Generator() if train else None
    if runtime.distributed:
        sampler = distributed.make_sampler(dataset, runtime, train)
    else:     # what DataLoader(shuffle=True) makes itself: the same order from the generator
        sampler = RandomSampler(dataset, generator=generator) if train else None
    log_path = current_log_path()           # workers' warnings (unreadable videos) to log.txt
    init = functools.partial(attach_warnings, log_path) if log_path and data.workers else None
    return DataLoader(dataset, batch_size=batch_size,
                      sampler=SkipFirst(sampler) if train else sampler,
                      num_workers=data.workers, drop_last=train,
                      pin_memory=runtime.device.type == 'cuda', generator=generator,
                      worker_init_fn=init)


# ----------------------------------------------------------------------------- loops

@functools.cache
def cpu_computes_bf16() -> bool:
    """Whether oneDNN computes bf16 natively on this CPU (AVX512-BF16 or AMX on x86). Where it
    does not (e.g. AVX2 only), it emulates bf16 and autocast runs several times slower than
    fp32 (TAM-ResNet-18 training 11x slower on a 2-core AVX2 EPYC: README, Speed)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):      # a build without oneDNN: trust --amp
        return True


def autocast_dtype(run: RunConfig, device: torch.device) -> torch.dtype | None:
    """The autocast type of these options on this device; None for none. CUDA: fp16, or bf16
    with --amp_dtype bf16. CPU: bf16 where the CPU computes it natively; elsewhere --amp stays
    fp32 (emulated bf16 would slow it down, the opposite of what --amp is for) unless
    --amp_dtype bf16 asks for bf16 anyway."""
    if not run.amp:
        return None
    if device.type == 'cuda':
        return torch.bfloat16 if run.amp_dtype == 'bf16' else torch.float16
    return torch.bfloat16 if run.amp_dtype == 'bf16' or cpu_computes_bf16() else None


def precision_note(run: RunConfig, device: torch.device) -> str | None:
    """One line for the log where --amp does not do here what it does on most machines."""
    if not run.amp or device.type != 'cpu' or cpu_computes_bf16():
        return None
    cpu = f'this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16'
    if run.amp_dtype == 'bf16':
        return f'--amp --amp_dtype bf16: {cpu}; emulated bf16 runs several times slower than fp32'
    return (f'--amp: {cpu} (AVX512-BF16 or AMX), where bf16 autocast runs several times slower '
            f'than fp32, so this run is fp32; --amp_dtype bf16 forces bf16')


def autocast(run: RunConfig, device: torch.device):
    """Autocast to autocast_dtype's type; nothing without --amp (or where it gives none)."""
    dtype = autocast_dtype(run, device)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def make_scaler(run: RunConfig, device: torch.device) -> torch.amp.GradScaler | None:
    """The gradient scaler fp16 autocast needs (CUDA --amp without --amp_dtype bf16), else None."""
    if autocast_dtype(run, device) == torch.float16:
        return torch.amp.GradScaler('cuda')
    return None


class LossNotFinite(ArithmeticError):
    """The loss of a training step is inf or NaN (checked before any weight changes)."""


def train_step(model, clips: torch.Tensor, labels: torch.Tensor, optimizer, scaler,
               cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch of uint8 clips already on the model's device:
    normalise, forward under autocast, cross-entropy, backward (scaled with a grad scaler),
    --clip_gradient on the unscaled gradients, step. Returns (loss, logits); LossNotFinite
    before the backward pass if the loss is inf or NaN. The engine and tools/benchmark.py both
    train with it."""
    data, run = cfg.data, cfg.run
    with autocast(run, clips.device):
        logits = model(normalize(clips, data.mean, data.std, run.channels_last))
        loss = F.cross_entropy(logits.float(), labels)
    if not torch.isfinite(loss):
        raise LossNotFinite(loss.item())
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if cfg.optim.clip_gradient is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_gradient)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss, logits


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
            reduced = distributed.all_reduce_sum([self.values[k] for k in self.keys], runtime)
            self.values = dict(zip(self.keys, reduced))
        return self

    def summary(self) -> dict:
        n = max(self.values['count'], 1)
        return dict(loss=self.values['loss_sum'] / n, top1=100.0 * self.values['correct1'] / n,
                    top5=100.0 * self.values['correct5'] / n, count=int(self.values['count']),
                    bad=int(self.values['bad']))


def log_clips(log: RunLog, clips: torch.Tensor, modality: str, step: int) -> None:
    """A grid of a training batch's first clips (utils.clip_grid) to TensorBoard as
    train/augmented_clips: the frames the model gets, after augmentation. `clips` is the
    loader's uint8 batch, which normalize maps one to one to the model's input, so it is shown
    as it is."""
    if not log.tensorboard:                  # other ranks, or TensorBoard off: not even the grid
        return
    clips, frames = clips[:MAX_CLIPS], clips.shape[2]
    if frames > 16:                          # long 3D clips: 16 evenly spaced frames
        clips = clips[:, :, torch.linspace(0, frames - 1, 16).round().long()]
    grid = clip_grid(clips, modality=modality)
    log.image('train/augmented_clips', grid, step)
    shown = f'{clips.shape[2]} of {frames}' if clips.shape[2] < frames else f'{frames}'
    log.info(f'TensorBoard: train/augmented_clips ({len(clips)} clips x {shown} frames)',
             console=False)


def warmup_factor(optim: OptimConfig, epoch: int, iteration: int, batches: int) -> float:
    """The share of the scheduled lr at 0-based `iteration` of `epoch` (of `batches`) under
    --warmup_epochs W: (step + 1) / (W * batches), at most 1. A function of the place in the
    run only, so a resumed run warms up exactly as an uninterrupted one."""
    if optim.warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch * batches + iteration + 1) / (optim.warmup_epochs * batches))


def train_one_epoch(model, loader, optimizer, scaler, cfg: Config, runtime: Runtime, epoch: int,
                    log: RunLog, done: int = 0, totals: 'Totals | None' = None,
                    save=None, show_clips: bool = False) -> dict:
    """Train one epoch. Resumed mid-epoch, `done` batches of it were trained before (the
    loader starts after them) and `totals` holds their sums; `save(batches_done, totals)` is
    called every --save_every batches (not after the last one: the epoch's end saves).
    `show_clips`: the first batch's clips go to TensorBoard (`log_clips`)."""
    model.train()
    if runtime.device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(runtime.device)
    totals = totals or Totals()
    batches = done + len(loader)
    seen, data_time, t_start = 0, 0.0, time.time()
    t_data = time.time()
    bar = log.progress(loader, desc=f'train {epoch + 1}/{cfg.optim.epochs}', initial=done,
                       total=batches)
    for i, batch in enumerate(bar, start=done):
        clips = batch['clip'].to(runtime.device, non_blocking=True)
        labels = batch['label'].to(runtime.device, non_blocking=True)
        data_time += time.time() - t_data
        if show_clips and i == done:         # the CPU batch: no copy back from the device
            log_clips(log, batch['clip'], cfg.data.modality, epoch)
        warm = warmup_factor(cfg.optim, epoch, i, batches)
        scheduled = [g['lr'] for g in optimizer.param_groups]
        for g in optimizer.param_groups:       # scaled for this step, then restored: the
            g['lr'] *= warm                    # scheduler and checkpoints see its own lr
        try:
            loss, logits = train_step(model, clips, labels, optimizer, scaler, cfg)
        except LossNotFinite as exc:
            raise UserError(f'the training loss is {exc.args[0]} at epoch {epoch + 1} iteration '
                            f'{i + 1} (diverged) at lr {scheduled[0] * warm:g} (--lr '
                            f'{cfg.optim.lr}); lower --lr or use --clip_gradient') from None
        finally:
            for g, lr in zip(optimizer.param_groups, scheduled):
                g['lr'] = lr

        n = labels.shape[0]
        c1, c5 = topk_correct(logits.detach(), labels)
        totals.add(loss_sum=loss.item() * n, correct1=c1, correct5=c5, count=n,
                   bad=batch['bad'].sum())
        seen += n
        steps = i + 1 - done                 # batches trained in this process
        elapsed = time.time() - t_start
        s = totals.summary()
        bar.set_postfix(loss=f'{s["loss"]:.3f}', top1=f'{s["top1"]:.1f}',
                        clips_s=f'{seen * runtime.world_size / elapsed:.1f}',
                        data=f'{data_time / steps:.3f}s')
        if (i + 1) % cfg.run.print_freq == 0:
            log.info(f'epoch {epoch + 1} iter {i + 1}/{batches} loss {s["loss"]:.4f} '
                     f'top1 {s["top1"]:.2f} clips/s {seen * runtime.world_size / elapsed:.1f} '
                     f'data {data_time / steps:.3f}s', console=False)
        if save is not None and cfg.run.save_every and (i + 1) % cfg.run.save_every == 0 \
                and i + 1 < batches:
            save(i + 1, totals)
        t_data = time.time()
    result = totals.reduce(runtime).summary()
    result['clips_per_s'] = seen * runtime.world_size / max(time.time() - t_start, 1e-9)
    result['data_time'] = data_time / max(len(loader), 1)
    if runtime.device.type == 'cuda':
        result['peak_gib'] = torch.cuda.max_memory_allocated(runtime.device) / 2 ** 30
    ratio = cfg.data.max_bad_ratio
    if result['bad'] > ratio * len(loader.dataset):
        where = current_log_path() or 'the warnings above'
        raise UserError(f'{result["bad"]} unreadable videos in epoch {epoch + 1} of '
                        f'{len(loader.dataset)} exceed --max_bad_ratio {ratio}; '
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
def evaluate(model, loader, cfg: Config, runtime: Runtime, log: RunLog, desc: str = 'val',
             keep_scores: bool = False) -> dict:
    """Evaluate clips of (B, V, C, T, H, W) views, fused per video by --view_fusion
    (`fuse_views`), at most -b views in one forward pass.

    Returns loss/top1/top5 over the videos that could be read, the number skipped, and with
    keep_scores the per-video fused scores and labels ordered by dataset index. The scores are
    the mean logits (as the original's score files) or the mean probabilities (rows sum to 1);
    the loss is `fused_loss` of them, so with one view (training's validation) it is the
    cross-entropy under either rule, the value --lr_scheduler plateau steps on.
    """
    rule, data, run = cfg.eval.view_fusion, cfg.data, cfg.run
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        # Evaluate the bare module: a DDP forward may start collectives, which would wait
        # forever on a rank whose shard has fewer (or no) batches. Rank 0's buffers first, so
        # every rank evaluates the model that rank 0 saves.
        distributed.broadcast_buffers(model.module)
        model = model.module
    model.eval()
    totals = Totals()
    scores_all, labels_all, index_all, bad_all = [], [], [], []
    for batch in log.progress(loader, desc=desc):
        clips = batch['clip']
        b, v = clips.shape[:2]
        views = clips.flatten(0, 1)
        logits = []
        for chunk in views.split(cfg.optim.batch_size):  # bounded memory for many views
            chunk = normalize(chunk.to(runtime.device, non_blocking=True), data.mean, data.std,
                              run.channels_last)
            with autocast(run, runtime.device):
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
            result.update(distributed.gather_by_index({k: result[k] for k in
                                           ('scores', 'labels', 'index', 'bad_mask')}))
    return result


# ----------------------------------------------------------------------------- training

def make_optimizer(model, optim: OptimConfig):
    return torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=optim.momentum,
                           nesterov=optim.nesterov, weight_decay=optim.weight_decay)


def make_scheduler(optimizer, optim: OptimConfig):
    """The original's per-epoch schedules, stepped once after each epoch's validation:
    step (x0.1 every lr_steps[0] epochs), multisteps (x0.1 at each of lr_steps), cosine
    (from --lr to 0 over --epochs) and plateau (x0.1 once the validation loss has not improved
    by a relative 1e-4 for more than 10 epochs; torch's defaults, as the original)."""
    if optim.lr_scheduler == 'step':
        return torch.optim.lr_scheduler.StepLR(optimizer, int(optim.lr_steps[0]), gamma=0.1)
    if optim.lr_scheduler == 'multisteps':
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(s) for s in optim.lr_steps],
                                                    gamma=0.1)
    if optim.lr_scheduler == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=optim.epochs,
                                                          eta_min=0)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode='min', factor=0.1, patience=10, threshold=1e-4, threshold_mode='rel',
        cooldown=0, min_lr=0)


def seed_everything(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(cfg: Config, runtime: Runtime, notes=()) -> dict:
    """Train and validate for --epochs; returns the last validation result.

    What a user can get wrong is checked before the first epoch, in order of cost: the log
    folder (before generating data), the lists and storage with their labels, then the
    weights (--pretrained, ImageNet, --resume) and the epochs left to train."""
    run, optim = cfg.run, cfg.optim
    seed_everything(cfg.seed)
    setup_process(run, runtime.device)
    if runtime.is_main:
        make_folder(run.logdir)
    cfg = prepare_data(cfg, runtime)
    model, arch = build(cfg)
    name = run_name(cfg, arch)
    folder, lock, folder_notes = claim_run_folder(run, name, runtime)
    try:
        log = RunLog(folder, enabled=runtime.is_main, lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    try:
        return train_in_folder(cfg, runtime, model, arch, folder, log, [*notes, *folder_notes])
    except BaseException:
        log.release_folder()         # (the log stays open for the error line: run_main)
        raise


def train_in_folder(cfg: Config, runtime: Runtime, model, arch: str, folder: str, log: RunLog,
                    notes) -> dict:
    """fit's training, once the run holds its folder: weights, loops, checkpoints."""
    run, optim = cfg.run, cfg.optim
    name = os.path.basename(folder)
    for note in notes:
        log.info(f'note: {note}')
    log.info(f'run {name}: {count_params(model):,} parameters, {cfg.model.num_classes} classes, '
             f'device {runtime.device}, logs in {folder}')
    if note := precision_note(run, runtime.device):
        log.info(f'note: {note}')

    t_run = time.time()
    with reading_user_files():              # train and val lists must be labelled (list_file)
        val_set = build_dataset(cfg.data, 'val', train=False, seed=cfg.seed)
        train_set = None if run.evaluate else build_dataset(cfg.data, 'train', train=True,
                                                            seed=cfg.seed)
    batch = per_process_batch(optim.batch_size, runtime)
    if train_set is not None and len(train_set) // runtime.world_size < batch:
        # Each process gets len // world_size videos (DistributedSampler drops the rest), and
        # its loader drops an incomplete last batch.
        raise UserError(f'{len(train_set)} training videos make no full batch of '
                        f'-b {optim.batch_size}; lower -b')

    resume_path, note = checkpoint_to_resume(run, folder)
    if note:
        log.info(f'note: {note}')
    if runtime.is_main and not run.evaluate:
        log.write_json('run', describe_run(cfg, model, arch, name))
    if run.pretrained and not resume_path:
        log.info(load_pretrained(model, run.pretrained, adapt_rgb_stem=True,
                                 trust=run.trust_checkpoint, new_classifier=not run.evaluate))
    elif run.imagenet_pretrained and not resume_path:
        log.info(load_imagenet(model, family(cfg.model.backbone_net).imagenet, cfg.model.depth,
                               run.imagenet_weights, trust=run.trust_checkpoint))

    model = wrap_model(model, cfg, runtime)
    if cfg.dist.sync_bn and runtime.device.type == 'cuda':
        synced = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
        log.info(f'--sync-bn: {synced} BatchNorm layers are SyncBatchNorm')
    optimizer = make_optimizer(model, optim)
    scheduler = make_scheduler(optimizer, optim)
    scaler = make_scaler(run, runtime.device)
    resumed = Resumed(optim.start_epoch, 0.0)
    if resume_path:
        resumed = resume(resume_path, model, optimizer, scheduler, scaler,
                         trust=run.trust_checkpoint, arch=arch, options=cfg.options)
        where = f' iteration {resumed.iteration}' if resumed.iteration else ''
        log.info(f'resumed from {resume_path} at epoch {resumed.epoch}{where} (best top-1 '
                 f'{resumed.best_top1:.2f})')
        if resumed.epoch >= optim.epochs and not run.evaluate:
            raise UserError(f'nothing to train: --resume {resume_path} has completed '
                            f'{resumed.epoch} epoch{"s" if resumed.epoch != 1 else ""} and '
                            f'--epochs is {optim.epochs}; give a larger --epochs to train on')
        set_resume_checkpoint(resume_path)
    start_epoch, best_top1 = resumed.epoch, resumed.best_top1

    val_loader = make_loader(val_set, cfg.data, runtime, train=False, batch_size=optim.batch_size)
    if run.evaluate:
        result = evaluate(model, val_loader, cfg, runtime, log)
        log.info(format_eval(result, 'val'))
        log.close()
        return result
    train_loader = make_loader(train_set, cfg.data, runtime, train=True, batch_size=batch)

    def save(epoch: int, is_best: bool = False, batches: int = 0, totals=None):
        progress = None
        if batches:                          # mid-epoch: every rank's running totals
            per_rank = [totals.values]
            if runtime.distributed:
                per_rank = [None] * runtime.world_size
                torch.distributed.all_gather_object(per_rank, totals.values)
            progress = dict(totals=per_rank, world_size=runtime.world_size,
                            batch_size=optim.batch_size)
        if runtime.is_main:
            save_checkpoint(folder, epoch=epoch, arch=arch, model=model, optimizer=optimizer,
                            scheduler=scheduler, scaler=scaler, best_top1=best_top1,
                            is_best=is_best, options=cfg.options, iteration=batches,
                            progress=progress, classes=names)

    names = class_names(cfg.data)
    done, totals = mid_epoch_start(resumed, runtime, optim.batch_size)
    if done >= len(train_loader):
        raise UserError(f'--resume {resume_path}: iteration {done} is past the {len(train_loader)}'
                        f' batches of an epoch: not a state this run wrote (a damaged or edited '
                        f'file, or other data); resume from another checkpoint')
    result = {}
    best_path = os.path.join(folder, BEST)
    for epoch in range(start_epoch, optim.epochs):
        # Everything random in an epoch derives from (seed, epoch): a resumed run repeats it.
        seed_everything(cfg.seed + epoch)
        if done:                             # mid-epoch: the RNG where the checkpoint was
            set_rng_state(resumed.rng)
        train_set.set_epoch(epoch)
        train_loader.generator.manual_seed(cfg.seed + epoch)
        train_loader.sampler.set_epoch(epoch)
        train_loader.sampler.skip = done * batch
        lr = optimizer.param_groups[0]['lr']
        t0 = time.time()
        try:
            train = train_one_epoch(model, train_loader, optimizer, scaler, cfg, runtime,
                                    epoch, log, done, totals,
                                    save=lambda batches, totals: save(epoch, False, batches,
                                                                      totals),
                                    show_clips=epoch == start_epoch)   # once a process
            done, totals = 0, None
        except FrameReadError as exc:         # a run of unreadable videos: wrong data
            raise UserError(f'{last_line(exc)}, epoch {epoch + 1}; check the data with '
                            f'tools/check_dataset.py') from None
        result = evaluate(model, val_loader, cfg, runtime, log)
        if optim.lr_scheduler == 'plateau':
            scheduler.step(result['loss'])
        else:
            scheduler.step()
        # The first epoch of a run folder always writes model_best (test.py's input), even at
        # top-1 0; later ones only when top-1 improves.
        is_best = result['top1'] > best_top1 or not os.path.isfile(best_path)
        best_top1 = max(best_top1, result['top1'])
        log.info(f'epoch {epoch + 1}/{optim.epochs} lr {lr:.5f} | train loss {train["loss"]:.4f} '
                 f'top1 {train["top1"]:.2f} ({train["clips_per_s"]:.1f} clips/s, data '
                 f'{train["data_time"]:.3f}s/it, '
                 + (f'peak {train["peak_gib"]:.1f} GiB, ' if 'peak_gib' in train else '')
                 + f'{train["bad"]} unreadable replaced) | '
                 f'{format_eval(result, "val")} | best {best_top1:.2f} | {time.time() - t0:.0f}s')
        log.scalars({'loss': train['loss'], 'top1': train['top1'], 'top5': train['top5'],
                     'lr': lr, 'clips_per_s': train['clips_per_s']}, epoch + 1, 'train/')
        log.scalars({k: result[k] for k in ('loss', 'top1', 'top5')}, epoch + 1, 'val/')
        log.record('metrics', dict(
            epoch=epoch + 1, lr=lr, **{f'train_{k}': train[k] for k in
                                       ('loss', 'top1', 'top5', 'clips_per_s', 'data_time')},
            **{f'val_{k}': result[k] for k in ('loss', 'top1', 'top5')}, best_top1=best_top1,
            epoch_seconds=time.time() - t0, run_seconds=time.time() - t_run))
        save(epoch + 1, is_best)
    log.info(f'done: best val top-1 {best_top1:.2f}; checkpoints in {folder}')
    log.close()
    result['best_top1'] = best_top1
    result['folder'] = folder
    return result


def claim_run_folder(run: RunConfig, name: str, runtime: Runtime):
    """(folder, lock or None, notes): the folder this run writes to (utils/run_folder.claim:
    locked; a new `<name>-N` rather than an earlier run's folder), decided by the main process
    and told to the others. -e (evaluation only) writes log lines to `<logdir>/<name>` and
    takes no lock."""
    folder, lock, notes = os.path.join(run.logdir, name), None, []
    if runtime.is_main and not run.evaluate:
        def resumes_here(candidate: str) -> bool:
            path, _ = checkpoint_to_resume(run, candidate)
            return bool(path) and (os.path.realpath(os.path.dirname(path))
                                   == os.path.realpath(candidate))
        folder, lock, notes = run_folder.claim(run.logdir, name, resumes_here)
    if runtime.distributed:
        box = [folder]
        torch.distributed.broadcast_object_list(box, src=0)
        folder = box[0]
    return folder, lock, notes


def checkpoint_to_resume(run: RunConfig, folder: str) -> tuple[str, str | None]:
    """The checkpoint to resume from ('' for none) and a note: --resume PATH; --resume auto,
    or a job its launcher restarted (torchrun --max-restarts, SLURM requeue) without --resume:
    the run folder's checkpoint.pth.tar if there is one."""
    restart = job_restart()
    if run.resume not in ('', 'auto') or (not run.resume and restart is None):
        return run.resume, None
    why = '--resume auto' if run.resume else f'restart {restart[0]} of this job by {restart[1]}'
    path = os.path.join(folder, CHECKPOINT)
    if os.path.isfile(path):
        return path, f'{why}: resuming from {path}'
    return '', f'{why}: no {CHECKPOINT} in {folder} yet, starting the run'


def mid_epoch_start(resumed: Resumed, runtime: Runtime, batch_size: int):
    """(batches of the resumed epoch already trained, their Totals on this rank), (0, None)
    at an epoch boundary. A mid-epoch checkpoint continues only with the world size and -b it
    was written with (the data each process sees depends on both)."""
    if not resumed.iteration:
        return 0, None
    progress = resumed.progress or {}
    if (progress.get('world_size'), progress.get('batch_size')) != (runtime.world_size,
                                                                     batch_size):
        raise UserError(f'the checkpoint was written mid-epoch by {progress.get("world_size")} '
                        f'processes with -b {progress.get("batch_size")}; it continues only '
                        f'with the same (this run: {runtime.world_size}, -b {batch_size})')
    totals = Totals()
    if set(progress['totals'][runtime.rank]) != set(Totals.keys):
        raise UserError(f'the mid-epoch checkpoint\'s running sums have the keys '
                        f'{sorted(progress["totals"][runtime.rank])}, not {list(Totals.keys)}: '
                        f'a damaged or edited file; resume from another checkpoint')
    totals.values.update(progress['totals'][runtime.rank])
    return resumed.iteration, totals


def last_line(exc: BaseException) -> str:
    """The message of an exception without a DataLoader worker's traceback around it."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.split(': ', 1)[1] if text.startswith(type(exc).__name__ + ': ') else text


def per_process_batch(batch_size: int, runtime: Runtime) -> int:
    """-b is the global batch; each distributed process takes its share."""
    if runtime.distributed:
        if batch_size % runtime.world_size:
            raise UserError(f'-b {batch_size} does not divide among {runtime.world_size} '
                            f'processes')
        return batch_size // runtime.world_size
    return batch_size


def wrap_model(model, cfg: Config, runtime: Runtime):
    """Move to the device; torch.compile with --compile; DataParallel over all visible GPUs
    when asked for in one process; DistributedDataParallel (with SyncBatchNorm on CUDA if
    --sync-bn) in a process group, also of one process (train_dist.py on one GPU)."""
    grouped = runtime.distributed or (torch.distributed.is_available()
                                      and torch.distributed.is_initialized())
    if grouped and cfg.dist.sync_bn and runtime.device.type == 'cuda':
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(runtime.device)
    if cfg.run.channels_last:
        to_channels_last(model)
    if cfg.run.compile:
        model = torch.compile(model, backend=cfg.run.compile)
    if grouped:
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


def load_for_eval(cfg: Config, runtime: Runtime):
    """A model with the weights of --pretrained (test.py checks that it is given), for test.py."""
    model, arch = build(cfg)
    report = load_pretrained(model, cfg.run.pretrained, trust=cfg.run.trust_checkpoint,
                             new_classifier=False)   # a fresh classifier evaluates nothing
    return wrap_model(model, cfg, runtime), arch, report
