"""What tools/benchmark.py's data and model benchmarks share: the toolkit as they call it, and
the machine they run on.

Every call of the benchmarks into the toolkit's options, configs, engine and datasets (opts,
utils.config, utils.engine, utils.video_dataset, models) is here, so that they build their
loaders, models and training steps exactly as the entrypoints do, and a change of those
interfaces is adapted in this one file.
"""
import dataclasses
import os
import platform

import torch

from models import count_conv_macs, registry
from opts import arg_parser, validate_args
from utils import engine
from utils.config import Config, EvalConfig
from utils.runtime import Runtime
from utils.transforms import normalize
from utils.video_dataset import build_dataset

# ----------------------------------------------------------------------------- options


def toolkit_config(argv, num_classes: int | None = None) -> Config:
    """The Config of toolkit options `argv`, parsed (opts.arg_parser) and validated
    (opts.validate_args: a bad option is a one-line error) as the entrypoints do; with
    `num_classes` the config for that many classes. Notes about ignored options are dropped."""
    args = arg_parser().parse_args(argv)
    validate_args(args, 'train')
    cfg = Config.from_args(args)
    return cfg.with_classes(num_classes) if num_classes else cfg


def with_precision(cfg: Config, amp: bool, channels_last: bool) -> Config:
    """`cfg` with --amp and --channels_last set as given (a benchmark mode)."""
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, amp=amp,
                                                            channels_last=channels_last))


def precision_note(cfg: Config, device: torch.device) -> str | None:
    """The engine's note where --amp does not do here what it does on most machines."""
    return engine.precision_note(cfg.run, device)


def temporal_module(cfg: Config) -> str | None:
    """The temporal module of a 2D model (TSN when not given); None for a 3D model."""
    return registry.temporal_module(cfg.model)


def setup_process(cfg: Config, device: torch.device) -> None:
    """The entrypoints' per-process settings (the CPU allocator)."""
    engine.setup_process(cfg.run, device)


# ----------------------------------------------------------------------------- data


def prepare_data(cfg: Config) -> Config:
    """`cfg` with the number of classes of its dataset (which must exist)."""
    return engine.prepare_data(cfg)


def dataset(cfg: Config, split: str, train: bool, clips: int = 1, crops: int = 1):
    """The toolkit's VideoDataset of `split`; evaluation datasets give clips x crops views."""
    views = None if train else EvalConfig(num_clips=clips, num_crops=crops)
    return build_dataset(cfg.data, split, train, views, seed=cfg.seed)


def make_loader(ds, cfg: Config, device: torch.device, train: bool, batch_size: int):
    """The engine's DataLoader of `ds` (its workers, shuffling, pinned memory)."""
    return engine.make_loader(ds, cfg.data, Runtime(device), train, batch_size)


# ----------------------------------------------------------------------------- model


def build_model(cfg: Config) -> tuple[torch.nn.Module, str]:
    """The model of these options and its arch name (no weights loaded)."""
    return engine.build(cfg)


def conv_macs(model: torch.nn.Module, cfg: Config) -> int:
    """Conv MACs of one clip of the configured length, size and channels."""
    return count_conv_macs(model, cfg.data.clip_length, cfg.data.input_size, cfg.data.channels)


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    return engine.to_channels_last(model)


def make_optimizer(model: torch.nn.Module, cfg: Config):
    """The optimiser training uses (SGD with --lr, --momentum, --weight-decay, ...)."""
    return engine.make_optimizer(model, cfg.optim)


def make_scaler(cfg: Config, device: torch.device):
    """The grad scaler training uses (CUDA fp16 --amp), else None."""
    return engine.make_scaler(cfg.run, device)


def train_step(model, clips: torch.Tensor, labels: torch.Tensor, optimizer, scaler,
               cfg: Config):
    """The engine's training step on uint8 clips on the device: normalise, autocast, loss,
    backward, unscale and --clip_gradient, step. Returns (loss, logits)."""
    return engine.train_step(model, clips, labels, optimizer, scaler, cfg)


def infer(model, clips: torch.Tensor, cfg: Config) -> torch.Tensor:
    """An inference forward pass as evaluation runs it: normalise uint8 clips on their device
    (channels_last with --channels_last), then the model under autocast (--amp)."""
    x = normalize(clips, cfg.data.mean, cfg.data.std, cfg.run.channels_last)
    with torch.inference_mode(), engine.autocast(cfg.run, clips.device):
        return model(x)


# ----------------------------------------------------------------------------- the machine


def machine() -> dict:
    info = dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                torch=torch.__version__, threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                cpu_bf16_native=engine.cpu_computes_bf16())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


def emit(result: dict, print_table, quiet: bool) -> dict:
    """A benchmark's result: its table (unless quiet), then one BENCHMARK_JSON line that
    scripts parse."""
    import json
    if not quiet:
        print_table(result)
    print('BENCHMARK_JSON ' + json.dumps(result), flush=True)
    return result
