"""Checkpoints: written atomically, and holding everything a resumed run needs."""
import os
import random
import tempfile

import numpy as np
import torch

from models.checkpoint_file import CheckpointError, load_file


def atomic_save(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash mid-write
    leaves the previous file intact, never a truncated one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix='.pth.tar')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, 'module'):
            model = model.module
        elif hasattr(model, '_orig_mod'):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict:
    """Every generator's state as tensors and plain types (loadable with weights_only=True):
    numpy's (name, uint32 keys, pos, has_gauss, cached_gaussian) with the keys as a tensor."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(torch=torch.get_rng_state(), python=random.getstate(),
                 numpy=(name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss))
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    name, keys, *rest = state['numpy']       # keys: a tensor, or an array in older checkpoints
    np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), *rest))
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_checkpoint(folder: str, *, epoch: int, arch: str, model, optimizer, scheduler, scaler,
                    best_top1: float, is_best: bool, args) -> str:
    """Write `checkpoint.pth.tar` (and `model_best.pth.tar` when is_best) into `folder`.

    `epoch` is the number of epochs completed, i.e. the epoch a resumed run starts at.
    """
    state = dict(epoch=epoch, arch=arch, state_dict=unwrap(model).state_dict(),
                 optimizer=optimizer.state_dict(),
                 scheduler=scheduler.state_dict() if scheduler is not None else None,
                 scaler=scaler.state_dict() if scaler is not None else None,
                 best_top1=best_top1, args=vars(args), rng=rng_state())
    path = os.path.join(folder, 'checkpoint.pth.tar')
    atomic_save(state, path)
    if is_best:
        atomic_save(state, os.path.join(folder, 'model_best.pth.tar'))
    return path


def resume(path: str, model, optimizer, scheduler, scaler, trust: bool = False) -> tuple[int, float]:
    """Restore a training run; returns (epoch to start at, best top-1 so far). The file is read
    safely (models.checkpoint_file.load_file: no code runs unless ``trust``)."""
    ckpt = load_file(path, trust)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path} is not a training checkpoint of this toolkit; use '
                              f'--pretrained for weights')
    missing = {'state_dict', 'optimizer', 'epoch'} - set(ckpt)
    if missing:
        raise CheckpointError(f'{path} is not a training checkpoint of this toolkit '
                         f'(no {", ".join(sorted(missing))}); use --pretrained for weights')
    unwrap(model).load_state_dict(ckpt['state_dict'])
    optimizer.load_state_dict(ckpt['optimizer'])
    if scheduler is not None and ckpt.get('scheduler') is not None:
        scheduler.load_state_dict(ckpt['scheduler'])
    if scaler is not None and ckpt.get('scaler') is not None:
        scaler.load_state_dict(ckpt['scaler'])
    if 'rng' in ckpt:
        set_rng_state(ckpt['rng'])
    return ckpt['epoch'], ckpt.get('best_top1', 0.0)
