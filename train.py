#!/usr/bin/env python3
"""Train a video model in one process: on the CPU, one GPU (--gpu), or DataParallel over all
visible GPUs. Every option is in opts.py; the training itself is utils/engine.py."""
import torch

from opts import arg_parser, validate_args
from utils.engine import Runtime, build, describe_model, fit, num_classes_of, select_device
from utils.errors import run_main


def show_model(args) -> None:
    """--show_model: print the model, its parameters and conv MACs, built on the meta device."""
    args.num_classes = num_classes_of(args)
    args.no_imagenet_pretrained = True
    with torch.device('meta'):
        model, arch = build(args)
    print(f'{arch}\n{describe_model(model, args)}')


def main(argv=None) -> dict | None:
    args = arg_parser().parse_args(argv)
    notes = validate_args(args, 'train')
    if args.show_model:
        return show_model(args)
    device = select_device(args)
    data_parallel = device.type == 'cuda' and args.gpu is None and torch.cuda.device_count() > 1
    return fit(args, Runtime(device=device, data_parallel=data_parallel), notes)


if __name__ == '__main__':
    run_main(main)
