#!/usr/bin/env python3
"""Train a video model in one process: on the CPU, one GPU (--gpu), or DataParallel over all
visible GPUs. Every option is in opts.py; the training itself is utils/engine.py."""
import torch

from opts import arg_parser, parse_config
from utils.engine import Runtime, build, describe_model, fit, num_classes_of, select_device
from utils.errors import run_main, stop_on_sigterm


def show_model(cfg) -> None:
    """--show_model: print the model, its parameters and conv MACs, built on the meta device."""
    cfg = cfg.with_classes(num_classes_of(cfg.data))
    with torch.device('meta'):
        model, arch = build(cfg)
    print(f'{arch}\n{describe_model(model, cfg)}')


def main(argv=None) -> dict | None:
    cfg, notes, args = parse_config(arg_parser(), argv, 'train')
    if args.show_model:
        return show_model(cfg)
    device = select_device(cfg.run)
    data_parallel = device.type == 'cuda' and cfg.run.gpu is None and torch.cuda.device_count() > 1
    return fit(cfg, Runtime(device=device, data_parallel=data_parallel), notes)


if __name__ == '__main__':
    stop_on_sigterm()
    run_main(main)
