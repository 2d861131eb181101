"""Reading weight and checkpoint files given by a user, without running code stored in them.

A ``.pth``/``.pth.tar`` file is a pickle, and unpickling can call any function the file names.
Every file a user names (``--pretrained``, ``--resume``, ``--imagenet_weights``, the tools,
``models.load_pretrained``) is read by ``load_file`` here: with ``torch.load(weights_only=True)``,
which rebuilds only tensors and plain Python types, plus the few harmless types that real
checkpoints hold (``SAFE_GLOBALS``). A file that needs anything else is refused with one line
naming it and the type; ``trust=True`` (``--trust_checkpoint``) is the user's explicit choice to
unpickle it fully, which runs whatever code it holds. ``.safetensors`` files hold only tensors
and string metadata and cannot run code at all.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import struct
import warnings
import zipfile
import zlib
from typing import Any

import numpy as np
import torch

from utils.errors import UserError

TRUST_HINT = ('if you trust the file (you made it, or know its source), pass --trust_checkpoint '
              '(trust=True in Python), which runs code stored in it; or convert it once with '
              'tools/export_weights.py --trust_checkpoint FILE OUT.safetensors')

# Types that real checkpoints hold besides tensors and plain types, each harmless to rebuild:
# argparse.Namespace (options saved as a namespace by many training scripts) and the numpy array
# pieces of a numpy RNG state (this project's checkpoints before it saved that state as a tensor).
# numpy 1 pickles arrays as numpy.core.multiarray._reconstruct, numpy 2 as numpy._core...; the
# (object, name) form maps the name in the file to the object here.
_multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
SAFE_GLOBALS = [
    argparse.Namespace,
    (_multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
    (_multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
    (_multiarray.scalar, 'numpy.core.multiarray.scalar'),
    (_multiarray.scalar, 'numpy._core.multiarray.scalar'),
    np.ndarray, np.dtype,
    *(type(np.dtype(t)) for t in (np.uint32, np.int64, np.float32, np.float64)),
]


class CheckpointError(UserError):
    """A weights file that cannot be used (a one-line ``error: ...``, see utils.errors)."""


def is_safetensors(path: str) -> bool:
    """A safetensors file: 8 bytes of little-endian header length, then a JSON header."""
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b'{':
        return False
    return struct.unpack('<Q', head[:8])[0] <= os.path.getsize(path) - 8


def _read_safetensors(path: str) -> dict:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{path} is a damaged safetensors file ({e})') from None
    out: dict[str, Any] = {'state_dict': state}
    for key, value in meta.items():        # JSON-encoded entries written by export_weights
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def load_file(path: str, trust: bool = False) -> Any:
    """The content of a checkpoint file on the CPU: a ``.safetensors`` file as
    ``{'state_dict': tensors, <metadata>...}``, a PyTorch file as ``torch.load`` gives it.

    Never unpickles other objects than tensors, plain types and ``SAFE_GLOBALS`` unless ``trust``.
    Any problem (missing, damaged, needs full unpickling) raises CheckpointError with one line.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'weights file not found: {path}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path} is empty (an interrupted copy or download?)')
    if is_safetensors(path):
        return _read_safetensors(path)
    if zipfile.is_zipfile(path):              # torch.save's format since PyTorch 1.6
        check_zip(path)
    try:
        if trust:
            return torch.load(path, map_location='cpu', weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter('ignore')    # torch's pickle-protocol notes; errors still raise
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r'GLOBAL (\S+)', str(e))
        if found and not trust:
            raise CheckpointError(
                f'{path} needs {found.group(1).rstrip(".")} to load, an object that only full '
                f'unpickling can rebuild, and unpickling runs code stored in the file; '
                f'{TRUST_HINT}') from None
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint ({_cause(e)})') from None
    except Exception as e:                 # any other failure of a user's file: damaged, not torch
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint (damaged or '
                              f'truncated? {type(e).__name__}: {_cause(e)})') from None


# The most content a checkpoint's zip members may declare, for the file's size: torch.save
# stores them uncompressed (content = file size); a deflated copy of real weights shrinks them
# by a few percent at most, while a crafted member can inflate 1,000-fold (1.5 MB -> 1.8 GB).
MAX_INFLATION = 4


def check_zip(path: str) -> None:
    """Check a zip checkpoint before torch.load reads it: its members may declare no more
    than MAX_INFLATION x the file's size (a zip bomb), and each must match its CRC-32 (torch
    does not check them, so a flipped bit in a tensor would load as other weights without a
    word). CheckpointError naming the file and the member otherwise."""
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            declared = sum(m.file_size for m in members)
            if declared > MAX_INFLATION * size + (1 << 20):
                raise CheckpointError(
                    f'{path} declares {declared:,} bytes of content in a {size:,}-byte file '
                    f'(a zip bomb, or not a checkpoint); refused before reading it')
            for member in members:            # reads each member once, in chunks
                with archive.open(member) as f:
                    while f.read(1 << 24):
                        pass
    except zipfile.BadZipFile as e:           # zipfile's CRC check: 'Bad CRC-32 for file X'
        raise CheckpointError(f'{path} is damaged ({e}: a bit flipped on disk or in a copy, '
                              f'or a file cut short); use another copy') from None
    except (OSError, EOFError, zlib.error, NotImplementedError) as e:
        raise CheckpointError(f'{path} is damaged ({type(e).__name__}: {e}); use another '
                              f'copy') from None


def _cause(e: Exception) -> str:
    """The informative part of a loading error, on one short line."""
    text = ' '.join(str(e).split())
    if 'WeightsUnpickler error:' in text:    # torch's weights_only message puts the cause last
        text = text.split('WeightsUnpickler error:', 1)[1].strip() or 'not a pickle'
    text = text.split(' Check the documentation')[0].split('. ')[0]
    return text[:160] or type(e).__name__
