"""Checkpoints: written atomically, and holding everything a resumed run needs."""
import io
import math
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from models.checkpoint_file import CheckpointError, load_file
from utils.errors import UserError, set_resume_checkpoint
from utils.files import atomic_write


def serialise(obj) -> memoryview:
    """torch.save into memory: the bytes are then written with Python's own file calls
    (utils/files.atomic_write), so a full disk is an OSError (ENOSPC) that becomes one line
    naming the file (torch's zip writer reports it as an opaque "unexpected pos" RuntimeError),
    and one serialisation serves both checkpoint files."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer()


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
BEST = 'model_best.pth.tar'            # the state of the epoch with the best val top-1


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
    data = serialise(state)
    had_one = os.path.isfile(path)
    todo = ('free some space or choose another --logdir, then '
            + (f'resume with --resume {path}' if had_one else 'run the command again'))
    # model_best first: a crash between the two writes then leaves checkpoint.pth.tar one
    # epoch behind (that epoch is trained again on resuming), never the best weights lost.
    if is_best:
        atomic_write(os.path.join(folder, BEST), data, todo)
    atomic_write(path, data, todo)
    set_resume_checkpoint(path)       # a Ctrl-C from now on resumes it
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
    names the options that differ (`options`: this run's Config.options). Every state is
    checked against the one this run made fresh before anything is restored (check_states):
    a damaged or edited file is one line naming the file and the key, never a silently changed
    run."""
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
    check_states(path, ckpt, model, optimizer, scheduler, scaler)
    try:
        unwrap(model).load_state_dict(ckpt['state_dict'])
        optimizer.load_state_dict(ckpt['optimizer'])
    except (RuntimeError, ValueError, KeyError) as exc:
        refuse(' '.join(str(exc).split())[:200])
    if scheduler is not None and ckpt.get('scheduler') is not None:
        scheduler.load_state_dict(ckpt['scheduler'])
    if scaler is not None and ckpt.get('scaler') is not None:
        scaler.load_state_dict(ckpt['scaler'])
    if ckpt.get('rng') is not None:
        current = rng_state()
        try:
            set_rng_state(ckpt['rng'])
        except Exception as exc:  # noqa: BLE001 - a state the generators refuse
            set_rng_state(current)
            raise _bad_key(path, f'rng: the random generators refuse it ({type(exc).__name__}: '
                                 f'{" ".join(str(exc).split())[:120]})') from None
    return Resumed(ckpt['epoch'], float(ckpt.get('best_top1', 0.0)), int(ckpt.get('iteration', 0)),
                   ckpt.get('progress'), ckpt.get('rng'))


# ----------------------------------------------------------------------------- checking a resume

# The keys a checkpoint of this toolkit may hold (save_checkpoint; `optimizer`/`scheduler`
# states are compared with this run's fresh ones, key by key).
CHECKPOINT_KEYS = {'epoch', 'arch', 'state_dict', 'optimizer', 'scheduler', 'scaler', 'best_top1',
                   'args', 'rng', 'iteration', 'progress', 'classes'}


def _bad_key(path: str, problem: str) -> CheckpointError:
    """`problem` names the key and what is wrong with it (`scheduler.foo is an unknown key`)."""
    return CheckpointError(f'--resume {path}: {problem}: not a state this toolkit writes '
                           f'(a damaged or edited file); resume from another checkpoint, or '
                           f'start from its weights with --pretrained')


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _compare(saved, fresh, key: str) -> str | None:
    """Where `saved` differs in form from `fresh` (a state this run made): the first key
    path and what is wrong, or None. Dicts need the same keys, lists the same length,
    numbers a finite number (where the fresh one is finite), tensors the same shape and
    type; values may differ."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            return f'{key} is a {type(saved).__name__}, not a dict'
        for k in saved:
            if k not in fresh:
                return f'{key}.{k} is an unknown key'
        for k in fresh:
            if k not in saved:
                return f'{key}.{k} is missing'
            wrong = _compare(saved[k], fresh[k], f'{key}.{k}')
            if wrong:
                return wrong
        return None
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            return f'{key} is not a list of {len(fresh)}'
        for i, (a, b) in enumerate(zip(saved, fresh)):
            wrong = _compare(a, b, f'{key}[{i}]')
            if wrong:
                return wrong
        return None
    if isinstance(fresh, bool) or fresh is None:
        return None if saved is None or isinstance(saved, bool) else f'{key} = {saved!r}'
    if _is_number(fresh):
        if not _is_number(saved):
            return f'{key} = {saved!r} is not a number'
        if math.isfinite(fresh) and not math.isfinite(saved):
            return f'{key} = {saved} is not finite'
        return None
    if isinstance(fresh, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or saved.shape != fresh.shape \
                or saved.dtype != fresh.dtype:
            return f'{key} is not a {fresh.dtype} tensor of shape {tuple(fresh.shape)}'
        return None
    return None if type(saved) is type(fresh) else f'{key} is a {type(saved).__name__}'


def _optimizer_problem(saved: dict, optimizer, scheduler_state) -> str | None:
    """The optimizer's state: the fresh one's groups and keys, a momentum buffer of each
    parameter's shape, and lrs that are the schedule's (`_last_lr`), finite and >= 0."""
    fresh = optimizer.state_dict()
    groups = dict(param_groups=fresh['param_groups'])
    wrong = _compare({'param_groups': saved.get('param_groups')} if isinstance(saved, dict)
                     else saved, groups, 'optimizer')
    if wrong:
        return wrong
    if set(saved) != {'state', 'param_groups'}:
        return f'optimizer keys {sorted(saved)}'
    params = [p for g in optimizer.param_groups for p in g['params']]
    if not isinstance(saved['state'], dict):
        return 'optimizer.state is not a dict'
    for index, state in saved['state'].items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(state, dict):
            return f'optimizer.state[{index!r}] names no parameter'
        for name, value in state.items():
            if name != 'momentum_buffer' or not isinstance(value, torch.Tensor) \
                    or value.shape != params[index].shape:
                return f'optimizer.state[{index}].{name} does not fit parameter {index}'
    last = scheduler_state.get('_last_lr') if isinstance(scheduler_state, dict) else None
    for i, group in enumerate(saved['param_groups']):
        lr = group['lr']
        if not (_is_number(lr) and math.isfinite(lr) and lr >= 0):
            return f'optimizer.param_groups[{i}].lr = {lr!r}'
        if last is not None and i < len(last) and _is_number(last[i]) \
                and not math.isclose(lr, last[i], rel_tol=1e-6, abs_tol=1e-12):
            return (f'optimizer.param_groups[{i}].lr = {lr:g} is not the schedule\'s lr '
                    f'{last[i]:g}')
    return None


def _rng_problem(state) -> str | None:
    """The form rng_state writes: torch's state as this build's, numpy's MT19937 state, Python's."""
    if not isinstance(state, dict) or not {'torch', 'python', 'numpy'} <= set(state) \
            or not set(state) <= {'torch', 'python', 'numpy', 'cuda'}:
        return 'rng is not the generators\' states'
    wrong = _compare(state['torch'], torch.get_rng_state(), 'rng.torch')
    if wrong:
        return wrong
    numpy_state = state['numpy']
    if (not isinstance(numpy_state, (list, tuple)) or len(numpy_state) != 5
            or numpy_state[0] != 'MT19937' or len(numpy_state[1]) != 624
            or not _is_number(numpy_state[2]) or not 0 <= numpy_state[2] <= 624):
        return 'rng.numpy is not an MT19937 state'
    python_state = state['python']
    if (not isinstance(python_state, (list, tuple)) or len(python_state) != 3
            or not isinstance(python_state[1], (list, tuple)) or len(python_state[1]) != 625):
        return 'rng.python is not a Mersenne Twister state'
    return None


def check_states(path: str, ckpt: dict, model, optimizer, scheduler, scaler) -> None:
    """CheckpointError naming `path` and the key unless every state of a training checkpoint
    has the form this run's own would have: known top-level keys, an epoch and iteration that
    are whole numbers >= 0, a best top-1 in 0-100, optimizer/scheduler/scaler states with this
    run's keys (a scheduler's load_state_dict copies any key onto itself: an injected one can
    freeze the lr), momentum buffers of the parameters' shapes, the generators' states, and a
    mid-epoch checkpoint's progress."""
    def bad(key, what=''):
        raise _bad_key(path, f'{key} {what}'.strip())
    unknown = set(ckpt) - CHECKPOINT_KEYS
    if unknown:
        bad(sorted(unknown)[0], 'is an unknown key')
    for key in ('epoch', 'iteration'):
        value = ckpt.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            bad(key, f'= {value!r} is not a whole number >= 0')
    best = ckpt.get('best_top1', 0.0)
    if not _is_number(best) or not 0 <= best <= 100:
        bad('best_top1', f'= {best!r} is not a top-1 in 0-100')
    if not isinstance(ckpt['state_dict'], dict):
        bad('state_dict', 'is not a dict')
    if scheduler is not None and ckpt.get('scheduler') is not None:
        wrong = _compare(ckpt['scheduler'], scheduler.state_dict(), 'scheduler')
        if wrong:
            bad(wrong)
    wrong = _optimizer_problem(ckpt['optimizer'], optimizer, ckpt.get('scheduler'))
    if wrong:
        bad(wrong)
    if scaler is not None and ckpt.get('scaler') is not None:
        wrong = _compare(ckpt['scaler'], scaler.state_dict(), 'scaler')
        if wrong:
            bad(wrong)
    if ckpt.get('rng') is not None:
        wrong = _rng_problem(ckpt['rng'])
        if wrong:
            bad(wrong)
    if ckpt.get('iteration'):
        progress = ckpt.get('progress')
        ok = (isinstance(progress, dict) and {'totals', 'world_size', 'batch_size'} <= set(progress)
              and isinstance(progress['totals'], list)
              and len(progress['totals']) == progress['world_size']
              and all(isinstance(t, dict) and all(_is_number(v) and math.isfinite(v) and v >= 0
                                                  for v in t.values())
                      for t in progress['totals']))
        if not ok:
            bad('progress', 'is not a mid-epoch state (per-rank running sums)')
