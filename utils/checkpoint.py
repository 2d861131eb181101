"""Checkpoints: written atomically, and holding everything a resumed run needs."""
import io
import os
import random
import tempfile
from dataclasses import dataclass

import numpy as np
import torch

from models.checkpoint_file import CheckpointError, load_file
from utils.errors import UserError, disk_full, is_disk_full, set_resume_checkpoint


def atomic_save(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, then rename (see atomic_write).

    The checkpoint is serialised in memory and written with Python's own file calls, so a full
    disk is an OSError (ENOSPC) that becomes one line naming the file (torch's zip writer
    reports it as an opaque "unexpected pos" RuntimeError).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getbuffer(),
                 'free some space or choose another --logdir, then resume with --resume')


def atomic_write(path: str, data, todo: str) -> None:
    """Write bytes to a temporary file in the same folder, then rename: a crash, a Ctrl-C or a
    full disk mid-write leaves the previous file intact, never a truncated one. A full disk is
    one line naming the file and whether the previous one is intact, then ``todo``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if is_disk_full(exc):
            kept = (f'the previous {os.path.basename(path)} is intact'
                    if os.path.isfile(path) else 'nothing was written')
            raise disk_full(path, f'{kept}; {todo}') from None
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


CHECKPOINT = 'checkpoint.pth.tar'      # the newest state of a run (--resume auto reads it)


def save_checkpoint(folder: str, *, epoch: int, arch: str, model, optimizer, scheduler, scaler,
                    best_top1: float, is_best: bool, options: dict, iteration: int = 0,
                    progress: dict | None = None, classes: list[str] | None = None) -> str:
    """Write `checkpoint.pth.tar` (and `model_best.pth.tar` when is_best) into `folder`,
    atomically: a crash leaves the previous file whole.

    `epoch` is the number of epochs completed, i.e. the epoch a resumed run starts at;
    `iteration` > 0 marks a mid-epoch checkpoint (--save_every): that many batches of epoch
    `epoch` are done, and `progress` holds what the epoch's remaining batches need (each rank's
    running totals, the world size and batch). `options` are the run's options
    (Config.options), stored as `args` as the original does; `classes` the class names in
    label order (tools read them).
    """
    state = dict(epoch=epoch, arch=arch, state_dict=unwrap(model).state_dict(),
                 optimizer=optimizer.state_dict(),
                 scheduler=scheduler.state_dict() if scheduler is not None else None,
                 scaler=scaler.state_dict() if scaler is not None else None,
                 best_top1=best_top1, args=dict(options), rng=rng_state(),
                 iteration=iteration, progress=progress, classes=classes)
    path = os.path.join(folder, CHECKPOINT)
    atomic_save(state, path)
    set_resume_checkpoint(path)       # a Ctrl-C from now on (even during model_best) resumes it
    if is_best:
        atomic_save(state, os.path.join(folder, 'model_best.pth.tar'))
    return path


# The options that shape the model's weights: a checkpoint resumes only into the same model.
MODEL_OPTIONS = ('backbone_net', 'depth', 'temporal_module_name', 'blending_frames',
                 'blending_method', 'no_dw_conv', 'shift_div', 'dw_t_conv', 'without_t_stride',
                 'pooling_method', 'groups', 'frames_per_group', 'dense_sampling', 'modality',
                 'flow_length', 'dataset', 'num_classes')


def _model_differences(saved: dict, options: dict) -> list[str]:
    """`--option saved (this run: ours)` for the model options that differ."""
    return [f'--{name} {saved[name]} (this run: {options[name]})' for name in MODEL_OPTIONS
            if name in saved and name in options and saved[name] != options[name]]


@dataclass
class Resumed:
    """Where a resumed run continues: at `iteration` batches into epoch `epoch` (0: its start),
    with the best top-1 so far; `progress` and `rng` as the mid-epoch checkpoint saved them."""
    epoch: int
    best_top1: float
    iteration: int = 0
    progress: dict | None = None
    rng: dict | None = None


def resume(path: str, model, optimizer, scheduler, scaler, trust: bool = False,
           arch: str | None = None, options: dict | None = None) -> Resumed:
    """Restore a training run; returns where it continues (Resumed). The file is read
    safely (models.checkpoint_file.load_file: no code runs unless ``trust``). A checkpoint of
    another model (`arch`, or the options in MODEL_OPTIONS of `args`) is a one-line error that
    names the options that differ (`options`: this run's Config.options)."""
    ckpt = load_file(path, trust)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path} is not a training checkpoint of this toolkit; use '
                              f'--pretrained for weights')
    missing = {'state_dict', 'optimizer', 'epoch'} - set(ckpt)
    if missing:
        raise CheckpointError(f'{path} is not a training checkpoint of this toolkit '
                         f'(no {", ".join(sorted(missing))}); use --pretrained for weights')
    saved = ckpt.get('args') if isinstance(ckpt.get('args'), dict) else {}
    differs = _model_differences(saved, options) if options is not None else []
    other_arch = arch is not None and ckpt.get('arch') not in (None, arch)

    def refuse(detail: str):
        raise UserError(f'--resume {path} holds another model than this run: {detail}; give '
                        f'the options it was trained with, or drop --resume (--pretrained '
                        f'starts from its weights)')
    if other_arch or differs:
        refuse(', '.join(differs) or f'{ckpt["arch"]}, this run {arch}')
    try:
        unwrap(model).load_state_dict(ckpt['state_dict'])
        optimizer.load_state_dict(ckpt['optimizer'])
    except (RuntimeError, ValueError, KeyError) as exc:
        refuse(' '.join(str(exc).split())[:200])
    if scheduler is not None and ckpt.get('scheduler') is not None:
        scheduler.load_state_dict(ckpt['scheduler'])
    if scaler is not None and ckpt.get('scaler') is not None:
        scaler.load_state_dict(ckpt['scaler'])
    if 'rng' in ckpt:
        set_rng_state(ckpt['rng'])
    return Resumed(ckpt['epoch'], float(ckpt.get('best_top1', 0.0)), int(ckpt.get('iteration', 0)),
                   ckpt.get('progress'), ckpt.get('rng'))
