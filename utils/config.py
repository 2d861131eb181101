"""Typed configurations: the command line, validated once (opts.validate_args), frozen into the
parts each module needs.

    model  models.config.ModelConfig  what builds the network (models/)
    data   DataConfig                 which videos, how they are sampled, read and transformed
    optim  OptimConfig                batch, optimiser, schedule, epochs
    eval   EvalConfig                 the evaluation views (clips x crops) and how they fuse
    run    RunConfig                  device, precision, weights to load, logging
    dist   DistConfig                 process start-up (train_dist.py, distributed test.py)

The defaults written here are the command line's (opts.py reads them), and every derived value
(clip length, input channels, classes, input statistics, storage, workers) is computed here,
once. A Config never changes: `dataclasses.replace` makes a changed copy.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np

from models.config import ModelConfig
from utils.dataset_config import get_dataset_config
from utils.sampling import frames_per_clip
from utils.pixel_limit import MAX_PIXELS
from utils.storage import STORAGE_KINDS
from utils.transforms import IMAGENET_MEAN, IMAGENET_STD

# The original's defaults per family (its models' mean()/std()): the ResNet-based ones use
# ImageNet's statistics (RGB order), flow 0.5 and the mean of ImageNet's stds; the
# Inception-based ones (GoogLeNet weights expect inputs in [-1, 1]) use 0.5 for both.
RESNET_FLOW_MEAN, RESNET_FLOW_STD = 0.5, float(np.mean(IMAGENET_STD))
INCEPTION_MEAN, INCEPTION_STD = 0.5, 0.5
FLOW_LENGTH = 5          # x/y pairs stacked per sampled frame, as TSN


@dataclass(frozen=True)
class DataConfig:
    """The videos (dataset, list files, storage) and how a clip is made of them."""
    dataset: str = 'synthetic'
    datadir: str = 'data/synthetic'
    make_synthetic: bool = False
    groups: int = 8                      # segments (uniform) or frames (dense) of a clip
    frames_per_group: int = 1
    dense_sampling: bool = False
    random_sampling: bool = False
    input_size: int = 224
    disable_scaleup: bool = False
    augmentor_ver: str = 'v1'
    scale_range: tuple[int, int] | None = None
    modality: str = 'rgb'
    flow_length: int = FLOW_LENGTH
    mean: tuple[float, ...] | None = None    # one value a channel once resolved (from_args)
    std: tuple[float, ...] | None = None
    storage: str = 'folders'
    video_short_side: int = 0
    exclude_list: tuple[str, ...] | None = None   # (utils.video_dataset.exclusions_for)
    image_tmpl: str | None = None        # None: the dataset's ({:05d}.jpg)
    allow_outside_root: bool = False     # list paths may leave --datadir (absolute, ..)
    workers: int = 2
    max_bad_ratio: float = 0.01
    max_pixels: int = MAX_PIXELS         # the largest frame decoded (utils/pixel_limit.py)
    num_classes: int = 0                 # 0 until known (Config.with_classes)

    @property
    def clip_length(self) -> int:
        """Frames per clip: what the model's time dimension is."""
        return frames_per_clip(self.groups, self.frames_per_group, self.dense_sampling)

    @property
    def channels(self) -> int:
        """3 for rgb, 2 x flow_length for flow."""
        return 2 * self.flow_length if self.modality == 'flow' else 3

    @property
    def dataset_config(self) -> dict:
        """The dataset's list names, separator, frame names (utils/dataset_config.py), with
        --image_tmpl's frame names when given."""
        cfg = get_dataset_config(self.dataset)
        if self.image_tmpl:
            cfg['image_tmpl'] = self.image_tmpl
        return cfg


@dataclass(frozen=True)
class OptimConfig:
    batch_size: int = 8                  # train_dist.py: the global batch
    lr: float = 0.01
    lr_scheduler: str = 'cosine'
    lr_steps: tuple[float, ...] = (15, 30, 45)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    epochs: int = 50
    start_epoch: int = 0
    clip_gradient: float | None = None
    warmup_epochs: float = 0.0           # linear warm-up of the lr over the first epochs


@dataclass(frozen=True)
class EvalConfig:
    """The views of a video and their fusion: `num_clips` clips x `num_crops` crops, in that
    order (the dataset's view axis, clip-major), fused by `view_fusion`."""
    num_clips: int = 1
    num_crops: int = 1
    eval_split: str = 'val'
    view_fusion: str = 'logits'

    @property
    def views(self) -> int:
        return self.num_clips * self.num_crops

    def videos_per_batch(self, batch_size: int) -> int:
        """-b bounds the views in one forward pass; a loader batch holds whole videos."""
        return max(1, batch_size // self.views)

    @property
    def tag(self) -> str:
        """The prefix of test.py's score and prediction files."""
        return f'{self.eval_split}_{self.num_clips}clips_{self.num_crops}crops'


@dataclass(frozen=True)
class RunConfig:
    """Where and how the process runs, which weights it starts from, where it logs."""
    device: str = 'auto'
    gpu: int | None = None
    amp: bool = False
    amp_dtype: str | None = None         # None: fp16 on CUDA, bf16 on the CPU (autocast_dtype)
    channels_last: bool = False
    compile: str | None = None           # a torch.compile backend (--compile)
    system_malloc: bool = False
    disable_cudnn_benchmark: bool = False
    logdir: str = 'logs'
    print_freq: int = 20
    save_every: int = 0                  # iterations between mid-epoch checkpoints (0: none)
    resume: str = ''                     # a path, or 'auto' (engine.checkpoint_to_resume)
    pretrained: str | None = None
    trust_checkpoint: bool = False
    imagenet_pretrained: bool = True     # False with --no_imagenet_pretrained, or when a
    imagenet_weights: str | None = None  # checkpoint's weights replace them (from_args)
    evaluate: bool = False


@dataclass(frozen=True)
class DistConfig:
    world_size: int = -1
    rank: int = -1
    dist_url: str = 'tcp://127.0.0.1:23456'
    dist_backend: str | None = None
    multiprocessing_distributed: bool = False
    nproc_per_node: int | None = None
    dist_timeout: int = 300
    sync_bn: bool = False


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    run: RunConfig = RunConfig()
    dist: DistConfig = DistConfig()
    seed: int = 0
    # The command line's values with the derived ones resolved (what checkpoints store as
    # `args`, and what --resume compares).
    options: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_args(cls, args) -> 'Config':
        """Freeze a parsed (and validated) options namespace."""
        from models.registry import family
        fam = family(args.backbone_net)
        values = vars(args)

        def take(kind, **derived):
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: values[k] for k in names if k in values and k not in derived},
                        **derived)

        data = take(DataConfig, storage=storage_kind(args), workers=capped_workers(
            args.workers, args.no_worker_cap), num_classes=0,
            scale_range=tuple(args.scale_range) if args.scale_range else None, mean=None, std=None,
            exclude_list=exclusion_files(getattr(args, 'exclude_list', None)))
        mean, std = input_stats(fam.imagenet, data.channels, data.modality, args.mean, args.std)
        data = dataclasses.replace(data, mean=mean, std=std)
        model = ModelConfig.from_namespace(args, getattr(args, 'num_classes', None) or 0)
        model = dataclasses.replace(model, frames=data.clip_length, input_channels=data.channels)
        loads_checkpoint = bool(args.resume not in ('', 'auto') or args.pretrained
                                or args.evaluate)
        run = take(RunConfig, imagenet_pretrained=not (args.no_imagenet_pretrained
                                                       or loads_checkpoint))
        optim = take(OptimConfig, lr_steps=tuple(args.lr_steps))
        options = dict(values, temporal_module_name=model.temporal_module_name,
                       workers=data.workers)
        cfg = cls(model=model, data=data, optim=optim, eval=take(EvalConfig), run=run,
                  dist=take(DistConfig), seed=args.seed, options=options)
        return cfg.with_classes(model.num_classes) if model.num_classes else cfg

    def with_classes(self, num_classes: int) -> 'Config':
        """This config for a dataset of `num_classes` classes (known once its data is ready)."""
        return dataclasses.replace(
            self, model=dataclasses.replace(self.model, num_classes=num_classes),
            data=dataclasses.replace(self.data, num_classes=num_classes),
            options=dict(self.options, num_classes=num_classes))


def exclusion_files(value) -> tuple[str, ...] | None:
    """--exclude_list as a tuple of files (a checkpoint of an older version stores one path)."""
    if not value:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def storage_kind(args) -> str:
    """--storage, or its older spellings: --use_lmdb is lmdb, --video_backend pyav is video."""
    kind = args.storage or 'folders'
    if args.use_lmdb:
        kind = 'lmdb'
    if args.video_backend == 'pyav':
        kind = 'video'
    if kind not in STORAGE_KINDS:
        raise ValueError(f'unknown storage {kind!r}; known: {", ".join(STORAGE_KINDS)}')
    return kind


def input_stats(imagenet: str, channels: int, modality: str, mean=None, std=None
                ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0-1 scale, RGB order), one value per input channel: --mean /
    --std (one value applies to every channel), else the original's default for the family's
    ImageNet network (`imagenet`: 'resnet' or 'inception') and the modality (r3d, mc3 and
    r2plus1d, which it did not have, take the ResNet family's)."""
    if imagenet == 'inception':
        default_mean, default_std = [INCEPTION_MEAN], [INCEPTION_STD]
    elif modality == 'rgb':
        default_mean, default_std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    else:
        default_mean, default_std = [RESNET_FLOW_MEAN], [RESNET_FLOW_STD]
    mean, std = list(mean or default_mean), list(std or default_std)
    return (tuple(mean * channels if len(mean) == 1 else mean),
            tuple(std * channels if len(std) == 1 else std))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def capped_workers(workers: int, no_cap: bool = False) -> int:
    """-j beyond the usable CPUs only adds processes that compete for them (and memory): at
    most the usable CPUs, as the original, unless `no_cap` (--no_worker_cap)."""
    return workers if no_cap else min(workers, usable_cpus())
