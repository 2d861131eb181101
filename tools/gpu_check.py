#!/usr/bin/env python3
"""Check every CUDA path of the toolkit on a GPU machine in one command, or the same sequence on
the CPU at tiny sizes (--dry_run, for CI), and print one table.

Called by tools/gpu_check.sh (which installs what is missing first); see that file for usage.

Steps (each a subprocess under its own timeout, all under one time budget; a failing step does
not stop the others; the exit status is 1 if any step failed, skipped steps are not failures):
  env          python, torch, CUDA, GPU, CPUs, optional packages, what gpu_check.sh installed
  dataset      tools/make_synthetic_dataset.py; test.txt is then cut to the first 4 val videos
               (the list the CPU/CUDA score comparison evaluates)
  train_*      train.py, 1 epoch, TAM-ResNet-50 and I3D-ResNet-50 8x224: fp32, --amp (fp16 and a
               grad scaler on CUDA), --amp --amp_dtype bf16 --channels_last, --compile (only if
               train.py has that option)
  dp_*         the default device selection (DataParallel over all visible GPUs when there are
               several: the train_tam_fp32 run, which gives no --device/--gpu) and --gpu 0
  dist_*       train_dist.py --multiprocessing-distributed --nproc_per_node 1 --sync-bn, 1 epoch,
               then --resume of its checkpoint with --epochs 2
  test_*       test.py 10 clips x 3 crops of train_tam_fp32's checkpoint on CUDA (the val list),
               and on the 4-video list on CUDA without TF32 and on the CPU
  bench_*      tools/benchmark.py model (I3D-R50, TAM-R50; fp32, --amp, --amp + channels_last,
               MFU from --peak_tflops), tools/benchmark.py data (the loader alone, -j CPUs), and
               torch.compile of TAM-R50 (last, with the time left)
  summaries    I3D-R50 amp+channels_last vs fp32 eager, loader vs TAM-R50 training, and the
               CPU vs CUDA score difference (max |difference| of the fused logits, <= 1e-3)

The toolkit's entrypoints run in a small in-process runner (`--entry`), which calls their main()
exactly as their command lines do (utils.errors.run_main: one error line, the same exit status)
and reads what they do not print: peak GPU memory (torch.cuda.max_memory_allocated), the type of
the wrapped model (DataParallel, DistributedDataParallel, SyncBatchNorm layers, channels_last),
the autocast dtype and grad scaler, and each epoch's training numbers. It only wraps functions
of utils.engine; it changes nothing they compute.

Output: the table on stdout (Markdown) and in gpu_check.md, everything in gpu_check.json, the
steps' logs in gpu_check.log (their tails) and logs/<step>.log (whole), under the local folder
(gpu_check_out/, or $GPU_CHECK_DIR) and, when $OUT is set, the first three in $OUT too.
"""
import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The interpreter of the steps: $PYTHON as for gpu_check.sh (the tests give a fast-starting
# one), else this one.
PY = os.environ.get('PYTHON') or sys.executable or 'python3'
RESULT_OK, RESULT_FAIL, RESULT_SKIP = 'ok', 'FAIL', 'skipped'
TOLERANCE = 1e-3                   # max |CPU - CUDA| of the fused logits
COMPARE_VIDEOS = 4                 # videos the CPU and CUDA evaluations share
LOG_TAIL_LINES = 120               # lines of each step's log in the combined log


# ============================================================================ sizes

def sizes(dry: bool) -> dict:
    """What each step runs at: the GPU targets, or tiny CPU ones for --dry_run."""
    if dry:
        return dict(
            data=['--classes', '4', '--videos_per_class', '2', '--val_per_class', '1',
                  '--height', '32', '--width', '40', '--min_frames', '8', '--max_frames', '12',
                  '-j', '1'],
            tam=['--backbone_net', 'resnet', '-d', '18', '--temporal_module_name', 'TAM'],
            i3d=['--backbone_net', 'i3d_resnet', '-d', '18'],
            clip=['--groups', '4', '--input_size', '32'],
            train_batch=['-b', '2'], workers=['-j', '1'],
            bench_model=['--groups', '4', '--input_size', '32', '-b', '2', '--steps', '2',
                         '--warmup', '1'],
            bench_data=['--height', '32', '--width', '40', '--videos', '8', '--frames', '16',
                        '--groups', '4', '--input_size', '32', '-j', '1', '-b', '2',
                        '--warmup', '1', '--train_batches', '4', '--eval_batches', '2'],
            names=dict(tam='TAM-R18 4x32', i3d='I3D-R18 4x32'),
            timeouts=dict(default=150, bench_compile=150), budget=420, compile_min=30)
    cpus = str(cpu_count())
    return dict(
        data=['--classes', '12', '--videos_per_class', '16', '--val_per_class', '2',
              '--height', '128', '--width', '160', '--min_frames', '16', '--max_frames', '32',
              '-j', cpus],
        tam=['--backbone_net', 'resnet', '-d', '50', '--temporal_module_name', 'TAM'],
        i3d=['--backbone_net', 'i3d_resnet', '-d', '50'],
        clip=['--groups', '8', '--input_size', '224'],
        train_batch=['-b', '16'], workers=['-j', cpus],
        bench_model=['--groups', '8', '--input_size', '224', '-b', '32', '--steps', '10',
                     '--warmup', '3'],
        bench_data=['--videos', '48', '--frames', '64', '--groups', '8', '--input_size', '224',
                    '-j', cpus, '-b', '32', '--warmup', '4', '--train_batches', '40',
                    '--eval_batches', '10'],
        names=dict(tam='TAM-R50 8x224', i3d='I3D-R50 8x224'),
        timeouts=dict(default=90, env=60, dataset=60, test_cuda_fp32=60, bench_i3d=120,
                      bench_tam=120, bench_data=120, bench_compile=300),
        budget=450, compile_min=60)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ============================================================================ the runner
# `gpu_check.py --entry train|train_dist|test|benchmark --result FILE -- ARGS`: one toolkit
# entrypoint in this process, watched.

def install_spies(record: dict) -> None:
    """Wrap utils.engine's functions to record what the run did; a function the engine no
    longer has is listed in record['unwatched'] instead."""
    import torch
    from utils import engine
    record.update(wraps=[], epochs=[], scaler=[], autocast=[], unwatched=[])

    def watch(name, make):
        original = getattr(engine, name, None)
        if original is None:
            record['unwatched'].append(name)
            return
        setattr(engine, name, make(original))

    def describe(model, runtime):
        inner = model
        while hasattr(inner, 'module') and isinstance(inner.module, torch.nn.Module):
            inner = inner.module
        bn = [m for m in inner.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        # channels_last shows in weights whose layouts differ (not 1x1 or depthwise kernels)
        shaped = [p for p in inner.parameters()
                  if p.dim() in (4, 5) and p.shape[1] > 1 and p.shape[-1] > 1]
        channels_last = bool(shaped) and all(
            p.is_contiguous(memory_format=torch.channels_last if p.dim() == 4
                            else torch.channels_last_3d) and not p.is_contiguous()
            for p in shaped)
        first = next(inner.parameters(), None)
        info = dict(type=type(model).__name__, device=str(first.device) if first is not None
                    else '?', batchnorm=len(bn),
                    syncbatchnorm=sum(isinstance(m, torch.nn.SyncBatchNorm) for m in bn),
                    channels_last=channels_last, cuda_devices=torch.cuda.device_count(),
                    world_size=getattr(runtime, 'world_size', None),
                    data_parallel=getattr(runtime, 'data_parallel', None))
        if isinstance(model, torch.nn.DataParallel):
            info['device_ids'] = list(model.device_ids)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            info['backend'] = str(torch.distributed.get_backend())
        return info

    def wrap_model(original):
        def wrapped(model, cfg, runtime, *a, **kw):
            out = original(model, cfg, runtime, *a, **kw)
            record['wraps'].append(describe(out, runtime))
            return out
        return wrapped

    def train_one_epoch(original):
        def wrapped(*a, **kw):
            out = original(*a, **kw)
            record['epochs'].append({k: v for k, v in out.items()
                                     if isinstance(v, (int, float))})
            return out
        return wrapped

    def make_scaler(original):
        def wrapped(*a, **kw):
            out = original(*a, **kw)
            record['scaler'].append(out is not None)
            return out
        return wrapped

    def autocast(original):
        def wrapped(*a, **kw):
            ctx = original(*a, **kw)
            dtype = str(getattr(ctx, 'fast_dtype', 'none')).replace('torch.', '')
            if dtype not in record['autocast']:
                record['autocast'].append(dtype)
            return ctx
        return wrapped

    watch('wrap_model', wrap_model)
    watch('train_one_epoch', train_one_epoch)
    watch('make_scaler', make_scaler)
    watch('autocast', autocast)


def json_safe(value, depth=0):
    """Numbers, strings and small containers of them (a test.py result holds arrays)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict) and depth < 3:
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()
                if not hasattr(v, 'shape')}
    if isinstance(value, (list, tuple)) and depth < 3 and len(value) <= 64:
        return [json_safe(v, depth + 1) for v in value]
    return None


def importable_toolkit() -> None:
    """Make the repository's modules importable in a step's process (started as a script)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)


def run_entry(entry: str, result_path: str, argv: list, no_tf32: bool, compile_backend: str
              ) -> None:
    """Run one entrypoint's main(argv) as its command line would, then write what was seen."""
    import importlib.util
    import resource
    importable_toolkit()
    import torch
    record = dict(entry=entry, argv=argv)
    if no_tf32:      # exact fp32 convolutions and matmuls (cuDNN uses TF32 by default)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        record['tf32'] = False
    if compile_backend:
        import functools
        torch.compile = functools.partial(torch.compile, backend=compile_backend)
        record['compile_backend'] = compile_backend
    install_spies(record)
    if entry == 'benchmark':
        from tools import benchmark as module
    else:   # by path: a module named `test` would be the standard library's
        spec = importlib.util.spec_from_file_location(f'{entry}_entry',
                                                      os.path.join(ROOT, f'{entry}.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    from utils.errors import run_main
    returned = {}

    def call():
        returned['value'] = module.main(argv)

    t0 = time.time()
    try:
        run_main(call)
    finally:
        record['seconds_main'] = time.time() - t0
        record['ok'] = 'value' in returned
        record['returned'] = json_safe(returned.get('value'))
        record['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            peaks = [torch.cuda.max_memory_allocated(i) / 2 ** 30
                     for i in range(torch.cuda.device_count())]
            record['peak_gpu_mem_gib'] = max(peaks)
            record['peak_gpu_mem_gib_per_device'] = peaks
        with open(result_path, 'w') as f:
            json.dump(record, f, indent=1)


def probe(result_path: str) -> None:
    """The env step: versions and the machine, as JSON."""
    import importlib
    import platform
    info = dict(python=platform.python_version(), executable=sys.executable,
                cpus=cpu_count(), c_compiler=shutil.which('cc') or shutil.which('gcc') or
                shutil.which('clang'))
    try:
        import torch
        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                    cuda_available=torch.cuda.is_available(),
                    cuda_devices=torch.cuda.device_count() if torch.cuda.is_available() else 0,
                    cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
                    else None, threads=torch.get_num_threads())
        if torch.cuda.is_available():
            props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
            info['gpus'] = [p.name for p in props]
            info['gpu_mem_gib'] = [round(p.total_memory / 2 ** 30, 1) for p in props]
            info['bf16'] = torch.cuda.is_bf16_supported()
        importable_toolkit()
        from utils.engine import cpu_computes_bf16
        info['cpu_bf16'] = cpu_computes_bf16()     # --amp on the CPU is bf16 only where native
        info['nccl'] = (torch.distributed.is_nccl_available()
                        if torch.distributed.is_available() else False)
    except Exception as exc:  # noqa: BLE001 (reported, the other steps say the rest)
        info['torch_error'] = f'{type(exc).__name__}: {exc}'
    for name in ('numpy', 'PIL', 'simplejpeg', 'lmdb', 'av', 'pyarrow', 'safetensors', 'tqdm',
                 'tensorboard', 'triton'):
        try:
            mod = importlib.import_module(name)
            info[f'pkg_{name}'] = str(getattr(mod, '__version__', 'present'))
        except Exception:  # noqa: BLE001
            info[f'pkg_{name}'] = None
    with open(result_path, 'w') as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1))


# ============================================================================ the steps

class Step:
    """One row of the table: a command, its timeout, and how to read its outcome."""

    def __init__(self, name, what, command=None, parse=None, timeout=None, optional=False,
                 precheck=None, env=None):
        self.name, self.what, self.command, self.parse = name, what, command, parse
        self.timeout, self.optional, self.precheck, self.env = timeout, optional, precheck, env
        self.result, self.detail, self.numbers, self.seconds = None, '', {}, 0.0
        self.argv, self.log_path, self.rc, self.data = None, None, None, {}

    def as_dict(self) -> dict:
        return dict(step=self.name, what=self.what, result=self.result, detail=self.detail,
                    numbers=self.numbers, seconds=round(self.seconds, 1), rc=self.rc,
                    command=shlex.join(self.argv) if self.argv else None, log=self.log_path)


class Check:
    """The whole sequence: builds the steps, runs them under the budget, writes the table."""

    def __init__(self, opts):
        self.opts, self.dry = opts, opts.dry_run
        self.size = sizes(self.dry)
        self.local = os.path.abspath(os.environ.get('GPU_CHECK_DIR') or
                                     os.path.join(ROOT, 'gpu_check_out'))
        self.work = os.path.join(self.local, 'work')
        self.logs = os.path.join(self.local, 'logs')
        self.data = os.path.join(self.work, 'data')
        self.budget = opts.budget or self.size['budget']
        self.start = time.time()
        self.steps = []
        self.by_name = {}
        self.env_info = {}

    # ------------------------------------------------------------------ command pieces

    def device(self, default_selection: bool = False) -> list:
        """--device for a run: none for the default selection; cpu in a dry run; else cuda."""
        if default_selection:
            return []
        return ['--device', 'cpu'] if self.dry else ['--device', 'cuda']

    def common(self, model: str, logdir: str) -> list:
        s = self.size
        return (['--dataset', 'synthetic', '--datadir', self.data] + s[model] + s['clip']
                + s['train_batch'] + s['workers']
                + ['--no_imagenet_pretrained', '--lr', '0.01', '--logdir', logdir])

    def entry(self, entry: str, name: str, args: list, no_tf32=False, backend=None) -> list:
        cmd = [PY, os.path.join(ROOT, 'tools', 'gpu_check.py'), '--entry', entry,
               '--result', self.result_file(name)]
        if no_tf32:
            cmd.append('--no_tf32')
        if backend:
            cmd += ['--compile_backend', backend]
        return cmd + ['--'] + args

    def result_file(self, name: str) -> str:
        return os.path.join(self.work, 'results', f'{name}.json')

    def run_dir(self, name: str) -> str:
        return os.path.join(self.work, 'runs', name)

    # ------------------------------------------------------------------ the sequence

    def build(self) -> None:
        s, dry = self.size, self.dry
        add = self.add
        add(Step('env', 'python, torch, CUDA, GPU, CPUs, packages',
                 lambda: [PY, os.path.join(ROOT, 'tools', 'gpu_check.py'), '--probe',
                          self.result_file('env')], self.parse_env))
        add(Step('dataset', 'tools/make_synthetic_dataset.py',
                 lambda: [PY, os.path.join(ROOT, 'tools', 'make_synthetic_dataset.py'),
                          '--root', self.data, '-q'] + s['data'], self.parse_dataset))
        help_text = self.train_help()
        has_compile = '--compile' in re.findall(r'--[a-z_-]+', help_text)
        for model in ('tam', 'i3d'):
            label = s['names'][model]
            modes = [('fp32', [], f'{label} fp32'),
                     ('amp', ['--amp'], f'{label} --amp (CUDA: fp16 + grad scaler)'),
                     ('bf16_cl', ['--amp', '--amp_dtype', 'bf16', '--channels_last'],
                      f'{label} --amp --amp_dtype bf16 --channels_last')]
            for mode, flags, what in modes:
                name = f'train_{model}_{mode}'
                default = model == 'tam' and mode == 'fp32'   # also the default-selection run
                add(Step(name, f'train.py 1 epoch, {what}' +
                         (', default device selection' if default else ''),
                         self.train_command(name, model, flags, self.device(default)),
                         self.parse_train(mode, default_selection=default)))
            name = f'train_{model}_compile'
            if dry and model == 'i3d':      # the same code path as TAM's: 20 s of CI saved
                add(Step(name, f'train.py 1 epoch, {label} --compile',
                         precheck=lambda: (RESULT_SKIP, 'dry run: --compile is checked on '
                                                        'TAM only')))
            elif has_compile:
                add(Step(name, f'train.py 1 epoch, {label} --compile',
                         self.train_command(name, model,   # dry run: no kernel compiler
                                            ['--compile'] + (['aot_eager'] if self.dry else []),
                                            self.device()),
                         self.parse_train('compile')))
            else:
                add(Step(name, f'train.py 1 epoch, {label} --compile',
                         precheck=lambda: (RESULT_SKIP, 'no --compile option in train.py '
                                                        '(python3 train.py --help)')))
        add(Step('dp_default', 'train.py default device selection (DataParallel over all '
                               'visible GPUs)', precheck=self.derive_dp_default))
        add(Step('dp_gpu0', 'train.py --gpu 0',
                 self.train_command('dp_gpu0', 'tam', [],
                                    ['--gpu', '0'] + (['--device', 'cpu'] if dry else [])),
                 self.parse_train('fp32', gpu0=True)))
        add(Step('dist_syncbn', 'train_dist.py --nproc_per_node 1 --sync-bn, 1 epoch',
                 lambda: self.dist_command(resume=False), self.parse_dist))
        add(Step('dist_resume', 'train_dist.py --resume its checkpoint, --epochs 2',
                 lambda: self.dist_command(resume=True), self.parse_resume))
        add(Step('test_cuda', f'test.py 10 clips x 3 crops, {s["names"]["tam"]} of '
                              f'train_tam_fp32, val list, CUDA',
                 lambda: self.test_command('test_cuda', 'val', self.device()), self.parse_test))
        add(Step('test_cuda_fp32', f'the same, {COMPARE_VIDEOS} videos, CUDA without TF32',
                 lambda: self.test_command('test_cuda_fp32', 'test', self.device(), True),
                 self.parse_test))
        add(Step('test_cpu', f'the same, {COMPARE_VIDEOS} videos, --device cpu',
                 lambda: self.test_command('test_cpu', 'test', ['--device', 'cpu']),
                 self.parse_test))
        add(Step('scores_cpu_vs_cuda', f'max |CPU - CUDA| of the fused logits (<= {TOLERANCE})',
                 precheck=self.compare_scores))
        dev = ['--device', 'cpu' if dry else 'cuda']
        peak = ['--peak_tflops', str(self.opts.peak_tflops)]
        for model in ('i3d', 'tam'):
            add(Step(f'bench_{model}', f'tools/benchmark.py model {s["names"][model]}',
                     [PY, os.path.join(ROOT, 'tools', 'benchmark.py'), 'model'] + dev
                     + s[model] + s['bench_model'] + peak, self.parse_bench_model))
        add(Step('bench_data', 'tools/benchmark.py data (loader alone, -j CPUs)',
                 [PY, os.path.join(ROOT, 'tools', 'benchmark.py'), 'data', '--root',
                  os.path.join(self.work, 'bench_data'), '--no_multiview', '--repeats', '1']
                 + dev + s['bench_data'], self.parse_bench_data))
        add(Step('i3d_amp_cl_vs_fp32', f'{s["names"]["i3d"]} train --amp --channels_last vs '
                                       f'fp32 eager, MFU', precheck=self.summarise_i3d))
        add(Step('loader_vs_tam_train', f'loader clips/s vs {s["names"]["tam"]} train clips/s',
                 precheck=self.summarise_loader))
        add(Step('bench_compile', f'tools/benchmark.py model {s["names"]["tam"]} --compile '
                                  f'(amp+compile)' + (' [dry run: backend aot_eager]'
                                                      if dry else ''),
                 self.entry('benchmark', 'bench_compile',
                            ['model'] + dev + s['tam'] + s['bench_model'] + peak
                            + ['--compile', '--modes', 'amp+compile'],
                            backend='aot_eager' if dry else None),
                 self.parse_bench_compile, optional=True, precheck=self.compile_precheck))

    def list_steps(self) -> int:
        """--list: each step, its timeout and its command line (those that need an earlier
        step's output name it), without running anything."""
        self.build()
        print(f'{"dry run" if self.dry else "GPU"}: budget {self.budget:.0f} s')
        for step in self.steps:
            try:
                cmd = step.command() if callable(step.command) else step.command
                text = shlex.join(cmd) if cmd else '(derived from earlier steps)'
            except StepError as exc:
                text = f'(built when it runs: {exc})'
            print(f'{step.name} [{step.timeout} s{", optional" if step.optional else ""}]: '
                  f'{step.what}\n    {text}')
        return 0

    def add(self, step: Step) -> None:
        step.timeout = step.timeout or self.size['timeouts'].get(
            step.name, self.size['timeouts']['default'])
        self.steps.append(step)
        self.by_name[step.name] = step

    def train_help(self) -> str:
        try:
            return subprocess.run([PY, os.path.join(ROOT, 'train.py'), '--help'], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60,
                                  env=self.step_env()).stdout
        except (OSError, subprocess.SubprocessError):
            return ''

    def train_command(self, name, model, flags, device):
        return self.entry('train', name, self.common(model, self.run_dir(name)) + device
                          + flags + ['--epochs', '1'])

    def dist_command(self, resume: bool):
        logdir = self.run_dir('dist')
        args = (['--multiprocessing-distributed', '--nproc_per_node', '1', '--sync-bn',
                 '--dist-url', f'tcp://127.0.0.1:{free_port()}', '--dist_timeout', '60']
                + self.common('tam', logdir) + self.device())
        name = 'dist_resume' if resume else 'dist_syncbn'
        if not resume:
            return self.entry('train_dist', name, args + ['--epochs', '1'])
        first = self.by_name['dist_syncbn'].data.get('folder')
        if not first:
            raise StepError('no checkpoint: dist_syncbn did not finish')
        return self.entry('train_dist', name, args + ['--epochs', '2', '--resume',
                                                      os.path.join(first, 'checkpoint.pth.tar')])

    def test_command(self, name, split, device, no_tf32=False):
        folder = self.by_name['train_tam_fp32'].data.get('folder')
        if not folder or not os.path.isfile(os.path.join(folder, 'model_best.pth.tar')):
            raise StepError('no checkpoint: train_tam_fp32 did not finish')
        s = self.size
        args = (['--dataset', 'synthetic', '--datadir', self.data] + s['tam'] + s['clip']
                + s['workers'] + ['-b', '30', '--num_clips', '10', '--num_crops', '3',
                                  '--eval_split', split, '--logdir', self.run_dir(name),
                                  '--pretrained', os.path.join(folder, 'model_best.pth.tar')]
                + device)
        return self.entry('test', name, args, no_tf32=no_tf32)

    # ------------------------------------------------------------------ running

    def step_env(self) -> dict:
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
                  'MASTER_PORT', 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'):
            env.pop(k, None)
        if self.dry:
            env['CUDA_VISIBLE_DEVICES'] = ''        # the CPU, even where a GPU is present
            env.setdefault('OMP_NUM_THREADS', '1')  # tiny convs: one thread is fastest
        return env

    def left(self) -> float:
        return self.budget - (time.time() - self.start)

    def run(self) -> int:
        shutil.rmtree(self.work, ignore_errors=True)       # a fresh dataset and fresh runs
        for d in (self.logs, os.path.join(self.work, 'results'), os.path.join(self.work, 'runs')):
            os.makedirs(d, exist_ok=True)
        for old in os.listdir(self.logs):
            os.remove(os.path.join(self.logs, old))
        self.build()
        only = set(self.opts.only.split(',')) if self.opts.only else None
        print(f'gpu_check: {"dry run (CPU, tiny sizes)" if self.dry else "GPU"}; '
              f'{len(self.steps)} steps, budget {self.budget:.0f} s; logs in {self.logs}',
              flush=True)
        try:
            for step in self.steps:
                if only is not None and step.name not in only:
                    step.result, step.detail = RESULT_SKIP, 'not in --only'
                    continue
                self.run_step(step)
                print(f'[{time.time() - self.start:6.1f}s] {step.name:<20} {step.result:<7} '
                      f'{step.seconds:6.1f} s', flush=True)
        except KeyboardInterrupt:
            for step in self.steps:
                if step.result is None:
                    step.result, step.detail = RESULT_FAIL, 'not run: interrupted'
        return self.report()

    def run_step(self, step: Step) -> None:
        t0 = time.time()
        try:
            if step.precheck is not None:
                verdict = step.precheck()
                if verdict is not None:
                    step.result, step.detail = verdict
                    return
            left = self.left()
            if left < (self.size['compile_min'] if step.optional else 10):
                step.result = RESULT_SKIP if step.optional else RESULT_FAIL
                step.detail = (f'not run: the {self.budget:.0f} s budget is spent '
                               f'({left:.0f} s left)')
                return
            timeout = min(step.timeout, left)
            command = step.command() if callable(step.command) else step.command
            step.argv = command
            log, rc, timed_out = self.execute(step, command, timeout)
            step.rc = rc
            if timed_out:
                cut = timeout < step.timeout        # stopped by the budget, not its own limit
                step.result = RESULT_SKIP if step.optional and cut else RESULT_FAIL
                step.detail = (f'stopped after {timeout:.0f} s: ' + ('the budget was spent'
                               if cut else 'its timeout') + f'; {last_error(log)}')
                return
            step.result, step.detail, step.numbers = step.parse(step, log, rc)
        except StepError as exc:
            step.result, step.detail = RESULT_FAIL, str(exc)
        except Exception as exc:  # noqa: BLE001 (a bug here must not stop the other steps)
            step.result, step.detail = RESULT_FAIL, f'gpu_check: {type(exc).__name__}: {exc}'
        finally:
            step.seconds = time.time() - t0
            step.numbers = {k: v for k, v in step.numbers.items() if v is not None}

    def execute(self, step: Step, command: list, timeout: float):
        """Run in a new session (its DataLoader workers and ranks with it); on timeout stop
        that whole process group. Returns (log text, exit status, timed out)."""
        step.log_path = os.path.join(self.logs, f'{step.name}.log')
        with open(step.log_path, 'w') as f:
            f.write(f'$ {shlex.join(command)}\n')
            f.flush()
            proc = subprocess.Popen(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                    env=self.step_env(), start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                stop_group(proc)
            except KeyboardInterrupt:
                stop_group(proc)
                raise
        with open(step.log_path, errors='replace') as f:
            return f.read(), proc.returncode, timed_out

    # ------------------------------------------------------------------ reading outcomes

    def load_result(self, name: str) -> dict:
        path = self.result_file(name)
        if not os.path.isfile(path):
            return {}
        with open(path) as f:
            return json.load(f)

    def parse_env(self, step, log, rc):
        info = self.load_result('env')
        self.env_info = info
        if rc != 0 or not info:
            return RESULT_FAIL, last_error(log), {}
        install = read_install_report(self.opts.install_report)
        info['install'] = install
        pkgs = ', '.join(f'{n} {info.get("pkg_" + n) or "-"}' for n in ('simplejpeg', 'lmdb', 'av'))
        gpus = info.get('gpus') or []
        gpu = (f'{gpus[0]} x{len(gpus)}, {info["gpu_mem_gib"][0]} GiB' if gpus else 'no GPU')
        detail = (f'python {info["python"]}, torch {info.get("torch", "-")} (CUDA '
                  f'{info.get("torch_cuda") or "-"}, cuDNN {info.get("cudnn") or "-"}), {gpu}, '
                  f'{info["cpus"]} CPUs; {pkgs}; JPEG decoder '
                  f'{"simplejpeg" if info.get("pkg_simplejpeg") else "PIL (no simplejpeg)"}')
        note = torch_requirement_note(info.get('torch'))
        if note:
            detail += '; ' + note
        if install:
            detail += '; ' + '; '.join(install)
        numbers = dict(cpus=info['cpus'], gpus=len(gpus),
                       gpu_mem_gib=info['gpu_mem_gib'][0] if gpus else None)
        if 'torch_error' in info:
            return RESULT_FAIL, f'torch: {info["torch_error"]}', numbers
        if not self.dry and not info.get('cuda_available'):
            return RESULT_FAIL, 'CUDA is not available; ' + detail, numbers
        failed = [line for line in install if 'FAILED' in line]
        if failed:
            return RESULT_FAIL, detail, numbers
        return RESULT_OK, detail, numbers

    def parse_dataset(self, step, log, rc):
        if rc != 0:
            return RESULT_FAIL, last_error(log), {}
        m = re.search(r'(\d+) classes, (\d+) train, (\d+) val, (\d+) test videos, (\d+) frames',
                      log)
        val = os.path.join(self.data, 'val.txt')
        with open(val, encoding='utf-8') as f:
            lines = [ln for ln in f if ln.strip()][:COMPARE_VIDEOS]
        test = os.path.join(self.data, 'test.txt')
        os.replace(test, os.path.join(self.data, 'test_generated.txt'))
        with open(test, 'w', encoding='utf-8') as f:
            f.writelines(lines)
        numbers = {}
        if m:
            numbers = dict(classes=int(m[1]), train_videos=int(m[2]), val_videos=int(m[3]),
                           frames=int(m[5]))
        return (RESULT_OK, f'{numbers.get("classes")} classes, {numbers.get("train_videos")} '
                           f'train / {numbers.get("val_videos")} val videos, '
                           f'{numbers.get("frames")} frames; test.txt = first {len(lines)} val '
                           f'videos (for the CPU/CUDA comparison)', numbers)

    def parse_train(self, mode, default_selection=False, gpu0=False):
        def parse(step, log, rc):
            r = self.load_result(step.name)
            if rc != 0 or not r.get('ok'):
                return RESULT_FAIL, last_error(log), {}
            epoch = (r.get('epochs') or [None])[-1] or epoch_from_log(log)
            if not epoch:
                return RESULT_FAIL, 'no epoch line in the output', {}
            wrap = (r.get('wraps') or [{}])[-1]
            returned = r.get('returned') or {}
            step.data['folder'] = returned.get('folder')
            numbers = dict(loss=epoch.get('loss'), clips_per_s=epoch.get('clips_per_s'),
                           data_s_per_it=epoch.get('data_time'), val_top1=returned.get('top1'),
                           seconds_main=r.get('seconds_main'))
            numbers.update(memory_numbers(r))
            problems = []
            if not isinstance(numbers['loss'], (int, float)) or not math.isfinite(numbers['loss']):
                problems.append(f'loss {numbers["loss"]} is not finite')
            unwatched = r.get('unwatched', [])      # engine functions renamed: not verified
            device = wrap.get('device', '?')
            if not self.dry and not device.startswith('cuda') and 'wrap_model' not in unwatched:
                problems.append(f'ran on {device}, not CUDA')
            scaler = any(r.get('scaler') or [])
            dtypes = [d for d in r.get('autocast', []) if d != 'none']
            want = {'fp32': ([], False), 'amp': (['float16'], True),
                    'bf16_cl': (['bfloat16'], False)}.get(mode)
            if self.dry and mode == 'bf16_cl':
                want = (['bfloat16'], False)        # the CPU's autocast type, no scaler
            elif self.dry and mode == 'amp':        # plain --amp: bf16 where the CPU has it
                native = self.env_info.get('cpu_bf16', True)
                want = (['bfloat16'] if native else [], False)
            if want and 'autocast' not in unwatched and sorted(dtypes) != want[0]:
                problems.append(f'autocast {"/".join(dtypes) or "off"}, expected '
                                f'{"/".join(want[0]) or "off"}')
            if want and 'make_scaler' not in unwatched and scaler != want[1]:
                problems.append(f'grad scaler {"on" if scaler else "off"}, expected '
                                f'{"on" if want[1] else "off"}')
            if mode == 'bf16_cl' and 'wrap_model' not in unwatched \
                    and not wrap.get('channels_last'):
                problems.append('weights are not channels_last')
            if gpu0 and not self.dry and device != 'cuda:0' and 'wrap_model' not in unwatched:
                problems.append(f'--gpu 0 ran on {device}')
            if default_selection:
                step.data['wrap'] = wrap
            mem = (f'peak {numbers["peak_gpu_mem_gib"]:.2f} GiB GPU' if 'peak_gpu_mem_gib' in
                   numbers else f'peak RSS {numbers["peak_rss_mib"]:.0f} MiB')
            detail = (f'loss {fmt(numbers["loss"], ".3f")}, {fmt(numbers["clips_per_s"], ".1f")} '
                      f'clips/s, data {fmt(numbers["data_s_per_it"], ".3f")} s/it, {mem}, '
                      f'{device}' + (f' {wrap["type"]}' if 'Parallel' in wrap.get('type', '')
                                     else '')
                      + f', autocast {"/".join(dtypes) or "off"}'
                      + (', grad scaler' if scaler else '')
                      + (', channels_last' if wrap.get('channels_last') else '')
                      + (f' (not watched: utils.engine.{", ".join(unwatched)})'
                         if unwatched else ''))
            if problems:
                return RESULT_FAIL, '; '.join(problems) + ' -- ' + detail, numbers
            return RESULT_OK, detail, numbers
        return parse

    def derive_dp_default(self):
        ref = self.by_name['train_tam_fp32']
        if ref.result != RESULT_OK:
            return RESULT_FAIL, 'train_tam_fp32 (the default-selection run) failed'
        wrap = ref.data.get('wrap') or {}
        n = wrap.get('cuda_devices', 0)
        self.by_name['dp_default'].numbers = dict(visible_gpus=n)
        if wrap.get('type') == 'DataParallel':
            return RESULT_OK, (f'train_tam_fp32 ran DataParallel over {n} GPUs '
                               f'{wrap.get("device_ids")}')
        if self.dry:
            return RESULT_OK, (f'train_tam_fp32 (no --device/--gpu): {wrap.get("device")}, '
                               f'no DataParallel (dry run: no GPU visible)')
        if n <= 1 and str(wrap.get('device', '')).startswith('cuda'):
            return RESULT_OK, (f'train_tam_fp32 (no --device/--gpu) ran as a single-GPU run on '
                               f'{wrap.get("device")}: {n} visible GPU, DataParallel needs 2 or '
                               f'more (not exercised)')
        return RESULT_FAIL, (f'{n} GPUs visible but the default selection gave '
                             f'{wrap.get("type")} on {wrap.get("device")}')

    def parse_dist(self, step, log, rc):
        r = self.load_result(step.name)
        if rc != 0 or not r.get('ok'):
            return RESULT_FAIL, last_error(log), {}
        epoch = (r.get('epochs') or [None])[-1] or epoch_from_log(log) or {}
        step.data['folder'] = (r.get('returned') or {}).get('folder')
        wrap = (r.get('wraps') or [{}])[-1]
        numbers = dict(loss=epoch.get('loss'), clips_per_s=epoch.get('clips_per_s'),
                       syncbatchnorm_layers=wrap.get('syncbatchnorm'),
                       batchnorm_layers=wrap.get('batchnorm'), world_size=wrap.get('world_size'))
        numbers.update(memory_numbers(r))
        said = 'SyncBatchNorm' in log.replace('--sync-bn is ignored on the CPU (SyncBatchNorm', '')
        detail = (f'backend {wrap.get("backend", "-")}, world size {wrap.get("world_size")}, '
                  f'model {wrap.get("type")}, {wrap.get("syncbatchnorm")} of '
                  f'{wrap.get("batchnorm")} BN layers SyncBatchNorm; loss '
                  f'{fmt(epoch.get("loss"), ".3f")}, {fmt(epoch.get("clips_per_s"), ".1f")} '
                  f'clips/s; the output {"names" if said else "does not name"} SyncBatchNorm')
        if not math.isfinite(epoch.get('loss', float('nan'))):
            return RESULT_FAIL, 'loss not finite -- ' + detail, numbers
        if self.dry:
            if '--sync-bn is ignored on the CPU' not in log:
                return RESULT_FAIL, 'no note that --sync-bn is ignored on the CPU -- ' + detail, \
                    numbers
            return RESULT_OK, 'dry run (gloo, CPU: --sync-bn ignored, as noted): ' + detail, \
                numbers
        if wrap.get('backend') != 'nccl':
            return RESULT_FAIL, f'backend {wrap.get("backend")}, not nccl -- ' + detail, numbers
        if not wrap.get('syncbatchnorm'):
            return RESULT_FAIL, ('--sync-bn converted no BatchNorm layer (utils/engine.wrap_model '
                                 'converts and wraps DDP only when world_size > 1) -- '
                                 + detail), numbers
        return RESULT_OK, detail, numbers

    def parse_resume(self, step, log, rc):
        r = self.load_result(step.name)
        if rc != 0 or not r.get('ok'):
            return RESULT_FAIL, last_error(log), {}
        m = re.search(r'resumed from \S+ at epoch (\d+)', log)
        line = re.search(r'epoch (\d+)/(\d+) lr ([\d.e+-]+)', log)
        epoch = (r.get('epochs') or [None])[-1] or epoch_from_log(log) or {}
        numbers = dict(resumed_at_epoch=int(m[1]) if m else None,
                       trained_epoch=int(line[1]) if line else None,
                       lr=float(line[3]) if line else None, loss=epoch.get('loss'),
                       epochs_trained=len(r.get('epochs') or []))
        detail = (f'resumed at epoch {numbers["resumed_at_epoch"]}, trained epoch '
                  f'{numbers["trained_epoch"]}/2 at lr {fmt(numbers["lr"], ".5f")} '
                  f'(the checkpoint\'s cosine schedule), loss {fmt(epoch.get("loss"), ".3f")}')
        if numbers['resumed_at_epoch'] != 1 or numbers['trained_epoch'] != 2 \
                or numbers['epochs_trained'] not in (0, 1):
            return RESULT_FAIL, 'did not resume at epoch 1 for one epoch -- ' + detail, numbers
        return RESULT_OK, detail, numbers

    def parse_test(self, step, log, rc):
        r = self.load_result(step.name)
        if rc != 0 or not r.get('ok'):
            return RESULT_FAIL, last_error(log), {}
        returned = r.get('returned') or {}
        m = re.search(r'^scores: (.+)$', log, re.M)
        step.data['scores'] = m[1].strip() if m else None
        count = returned.get('count')
        seconds = r.get('seconds_main')
        numbers = dict(top1=returned.get('top1'), top5=returned.get('top5'), videos=count,
                       views=30, videos_per_s=count / seconds if count and seconds else None,
                       seconds_main=seconds)
        numbers.update(memory_numbers(r))
        if not step.data['scores'] or not os.path.isfile(step.data['scores']):
            return RESULT_FAIL, 'no score file named in the output', numbers
        wrap = (r.get('wraps') or [{}])[-1]
        detail = (f'{count} videos x 30 views: top1 {fmt(numbers["top1"], ".2f")}, '
                  f'{fmt(numbers["videos_per_s"], ".2f")} videos/s (model load included), '
                  f'{wrap.get("device", "?")}' + ('' if r.get('tf32', True) else ', TF32 off'))
        return RESULT_OK, detail, numbers

    def compare_scores(self):
        """CPU vs CUDA on the same videos, views and batches: the gated difference (TF32 off)
        and, for information, the default one (TF32 convolutions) from the val run."""
        cpu, exact, full = (self.by_name[n] for n in ('test_cpu', 'test_cuda_fp32', 'test_cuda'))
        if cpu.result != RESULT_OK or exact.result != RESULT_OK:
            return RESULT_FAIL, 'test_cpu or test_cuda_fp32 failed'
        import numpy as np
        a = np.load(cpu.data['scores'])
        b = np.load(exact.data['scores'])
        names_a, names_b = video_names(cpu.data['scores']), video_names(exact.data['scores'])
        if a.shape != b.shape or names_a != names_b:
            return RESULT_FAIL, f'different videos: {a.shape} {names_a} vs {b.shape} {names_b}'
        diff = float(np.abs(a - b).max())
        scale = float(np.abs(a).max())
        tolerance = TOLERANCE * max(1.0, scale)     # absolute, relative for logits above 1
        numbers = dict(max_abs_diff=diff, max_abs_logit=scale, tolerance=tolerance,
                       videos=int(a.shape[0]), classes=int(a.shape[1]))
        where = 'both on the CPU (dry run: difference 0 expected)' if self.dry else \
            'CUDA without TF32 vs CPU'
        detail = (f'{where}: max abs diff {diff:.3g} over {a.shape[0]}x{a.shape[1]} fused '
                  f'logits (max abs logit {scale:.3g}; tolerance {tolerance:.3g} = '
                  f'{TOLERANCE:g} x max(1, max abs logit))')
        if full.result == RESULT_OK:
            c = np.load(full.data['scores'])[:a.shape[0]]
            if video_names(full.data['scores'])[:a.shape[0]] == names_a and c.shape == a.shape:
                numbers['max_abs_diff_tf32'] = float(np.abs(c - a).max())
                detail += (f'; default (TF32 convs{", n/a on the CPU" if self.dry else ""}, '
                           f'val run) vs CPU {numbers["max_abs_diff_tf32"]:.3g} (not gated)')
        self.by_name['scores_cpu_vs_cuda'].numbers = numbers
        ok = diff <= tolerance and (not self.dry or diff == 0)
        return (RESULT_OK if ok else RESULT_FAIL), detail

    def parse_bench_model(self, step, log, rc):
        r = benchmark_json(log)
        if rc != 0 or not r:
            return RESULT_FAIL, last_error(log), {}
        rows = {row['mode']: row for row in r['rows']}
        step.data['rows'] = rows
        errors = [f'{m}: {row[k]}' for m, row in rows.items() for k in ('train_error',
                                                                         'infer_error') if k in row]
        numbers = {}
        parts = []
        for mode, row in rows.items():
            key = mode.replace(' ', '_').replace('+', '_')
            numbers[f'{key}_train_clips_per_s'] = row.get('train_clips_per_s')
            numbers[f'{key}_infer_clips_per_s'] = row.get('infer_clips_per_s')
            numbers[f'{key}_train_x_fp32'] = row.get('train_speedup')
            numbers[f'{key}_train_mfu'] = row.get('train_mfu')
            numbers[f'{key}_peak_mem_mib'] = row.get('train_peak_mem_mb')
            parts.append(f'{mode} {fmt(row.get("train_clips_per_s"), ".1f")}'
                         + (f' ({row["train_speedup"]:.2f}x)' if mode != 'fp32 eager'
                            and 'train_speedup' in row else '')
                         + (f' MFU {row["train_mfu"]:.1%}' if 'train_mfu' in row else ''))
        fast = 'amp+channels_last' if 'amp+channels_last' in rows else list(rows)[-1]
        detail = (f'train clips/s, b{r["batch_size"]}: ' + '; '.join(parts)
                  + f'; infer {fast} {fmt(rows[fast].get("infer_clips_per_s"), ".1f")}')
        if errors:
            return RESULT_FAIL, '; '.join(errors) + ' -- ' + detail, numbers
        return RESULT_OK, detail, numbers

    def parse_bench_data(self, step, log, rc):
        r = benchmark_json(log)
        if rc != 0 or not r:
            return RESULT_FAIL, last_error(log), {}
        rows = {row['loader']: row for row in r['rows']}
        step.data['rows'] = rows
        train = rows.get('train', {})
        ev = rows.get('eval 1x1', {})
        numbers = dict(train_loader_clips_per_s=train.get('ours_uint8_clips_per_s'),
                       train_normalised_clips_per_s=train.get('ours_clips_per_s'),
                       train_baseline_clips_per_s=train.get('baseline_clips_per_s'),
                       eval_loader_clips_per_s=ev.get('ours_uint8_clips_per_s'),
                       workers=r.get('workers'), batch=r.get('batch_size'))
        checks = r.get('checks', {})
        bad = [n for n, c in checks.items() if not (c.get('same_shape') and c.get('same_dtype'))]
        decoder = 'simplejpeg' if self.env_info.get('pkg_simplejpeg') else 'PIL'
        detail = (f'train: loader alone {fmt(numbers["train_loader_clips_per_s"], ".1f")} '
                  f'clips/s, + normalise on {r.get("device")} '
                  f'{fmt(numbers["train_normalised_clips_per_s"], ".1f")}, original pipeline '
                  f'{fmt(numbers["train_baseline_clips_per_s"], ".1f")}; eval 1x1 loader '
                  f'{fmt(numbers["eval_loader_clips_per_s"], ".1f")}; -j {r.get("workers")} '
                  f'-b {r.get("batch_size")}, {decoder}')
        if bad:
            return RESULT_FAIL, f'outputs differ from the baseline in shape/dtype: {bad}', numbers
        return RESULT_OK, detail, numbers

    def compile_precheck(self):
        if self.dry:                # backend aot_eager: no code generation, no compiler
            return None
        if not (self.env_info.get('c_compiler') or shutil.which('cc') or shutil.which('gcc')):
            return RESULT_SKIP, 'no C compiler (torch.compile needs one)'
        return None

    def parse_bench_compile(self, step, log, rc):
        result, detail, numbers = self.parse_bench_model(step, log, rc)
        tam = self.by_name['bench_tam'].data.get('rows', {})
        row = step.data.get('rows', {}).get('amp+compile', {})
        eager = tam.get('amp', {}).get('train_clips_per_s')
        if result == RESULT_OK and eager and row.get('train_clips_per_s'):
            numbers['compile_train_x_amp_eager'] = row['train_clips_per_s'] / eager
            detail += f'; {numbers["compile_train_x_amp_eager"]:.2f}x amp eager (bench_tam)'
        return result, detail, numbers

    def summarise_i3d(self):
        bench = self.by_name['bench_i3d']
        rows = bench.data.get('rows')
        if bench.result != RESULT_OK or not rows:
            return RESULT_FAIL, 'bench_i3d failed'
        fp32, fast = rows.get('fp32 eager', {}), rows.get('amp+channels_last', {})
        numbers = dict(fp32_train_clips_per_s=fp32.get('train_clips_per_s'),
                       amp_cl_train_clips_per_s=fast.get('train_clips_per_s'),
                       ratio=fast.get('train_speedup'), amp_cl_train_mfu=fast.get('train_mfu'),
                       fp32_train_mfu=fp32.get('train_mfu'))
        self.by_name['i3d_amp_cl_vs_fp32'].numbers = numbers
        mfu = (f'MFU {numbers["amp_cl_train_mfu"]:.1%} of {self.opts.peak_tflops:g} TFLOP/s '
               f'(conv FLOPs; fp32 eager {fmt(numbers["fp32_train_mfu"], ".1%")})'
               if numbers['amp_cl_train_mfu'] is not None else 'MFU n/a on the CPU')
        return RESULT_OK, (f'{fmt(numbers["amp_cl_train_clips_per_s"], ".1f")} vs '
                           f'{fmt(numbers["fp32_train_clips_per_s"], ".1f")} clips/s = '
                           f'{fmt(numbers["ratio"], ".2f")}x; {mfu}')

    def summarise_loader(self):
        data, bench = self.by_name['bench_data'], self.by_name['bench_tam']
        if data.result != RESULT_OK or bench.result != RESULT_OK:
            return RESULT_FAIL, 'bench_data or bench_tam failed'
        loader = data.numbers.get('train_loader_clips_per_s')
        rows = bench.data['rows']
        mode = max(rows, key=lambda m: rows[m].get('train_clips_per_s') or 0)
        train = rows[mode].get('train_clips_per_s')
        epoch = self.by_name['train_tam_bf16_cl'].numbers.get('clips_per_s')
        numbers = dict(loader_clips_per_s=loader, train_clips_per_s=train,
                       loader_over_train=loader / train if loader and train else None,
                       train_py_epoch_clips_per_s=epoch)
        self.by_name['loader_vs_tam_train'].numbers = numbers
        keeps = numbers['loader_over_train'] is not None and numbers['loader_over_train'] >= 1
        return RESULT_OK, (f'loader alone {fmt(loader, ".1f")} clips/s vs train '
                           f'{fmt(train, ".1f")} clips/s ({mode}, fastest mode): '
                           f'{"keeps up" if keeps else "does NOT keep up"} '
                           f'({fmt(numbers["loader_over_train"], ".2f")}x); train.py epoch '
                           f'(bf16 channels_last, small frames, cold start) '
                           f'{fmt(epoch, ".1f")} clips/s')

    # ------------------------------------------------------------------ the report

    def report(self) -> int:
        total = time.time() - self.start
        failed = [s.name for s in self.steps if s.result == RESULT_FAIL]
        summary = dict(mode='dry_run' if self.dry else 'gpu', ok=not failed, failed=failed,
                       total_s=round(total, 1), budget_s=self.budget,
                       started=time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.start)),
                       env=self.env_info, tolerance=TOLERANCE,
                       peak_tflops=self.opts.peak_tflops,
                       steps=[s.as_dict() for s in self.steps])
        table = markdown(self.steps, summary)
        outs = [self.local] + ([os.environ['OUT']] if os.environ.get('OUT') else [])
        combined = self.combined_log()
        for folder in outs:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, 'gpu_check.json'), 'w') as f:
                json.dump(summary, f, indent=1)
            with open(os.path.join(folder, 'gpu_check.md'), 'w') as f:
                f.write(table)
            with open(os.path.join(folder, 'gpu_check.log'), 'w') as f:
                f.write(combined)
        print('\n' + table, flush=True)
        return 1 if failed else 0

    def combined_log(self) -> str:
        parts = []
        for s in self.steps:
            parts.append(f'===== {s.name}: {s.result} ({s.seconds:.1f} s) {s.detail}\n')
            if s.log_path and os.path.isfile(s.log_path):
                with open(s.log_path, errors='replace') as f:
                    lines = f.read().splitlines()
                if len(lines) > LOG_TAIL_LINES + 1:
                    lines = lines[:1] + [f'... ({len(lines) - LOG_TAIL_LINES - 1} lines; the '
                                         f'whole log: {s.log_path})'] + lines[-LOG_TAIL_LINES:]
                parts.append('\n'.join(lines) + '\n')
        return ''.join(parts)


# ============================================================================ helpers

class StepError(Exception):
    """A step cannot run (what it needs from an earlier step is missing)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group (it started it: start_new_session), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def last_error(log: str) -> str:
    """The line that says what went wrong: the last `error:` line, else the last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and not ln.startswith('$ ')]
    errors = [ln for ln in lines if ln.startswith('error:') or 'Error' in ln.split(':')[0]]
    line = (errors or lines or ['no output'])[-1]
    return line[:300]


def epoch_from_log(log: str) -> dict | None:
    """The engine's epoch line, `train loss L top1 T (X clips/s, data Ys/it, ...)`, when the
    runner's watch of train_one_epoch saw nothing."""
    m = None
    for m in re.finditer(r'train loss (\S+) top1 (\S+) \((\S+) clips/s, data (\S+)s/it', log):
        pass
    if not m:
        return None
    return dict(loss=float(m[1]), top1=float(m[2]), clips_per_s=float(m[3]),
                data_time=float(m[4]))


def memory_numbers(r: dict) -> dict:
    if 'peak_gpu_mem_gib' in r:
        return dict(peak_gpu_mem_gib=r['peak_gpu_mem_gib'])
    return dict(peak_rss_mib=r.get('peak_rss_mib'))


def benchmark_json(log: str) -> dict | None:
    for line in reversed(log.splitlines()):
        if line.startswith('BENCHMARK_JSON '):
            return json.loads(line[len('BENCHMARK_JSON '):])
    return None


def video_names(scores_path: str) -> list:
    """The video column of test.py's predictions file beside a scores file."""
    import csv
    path = scores_path.replace('_scores.npy', '_predictions.csv')
    with open(path, newline='', encoding='utf-8') as f:
        return [row[0] for row in list(csv.reader(f))[1:]]


def read_install_report(path: str | None) -> list:
    if not path or not os.path.isfile(path):
        return []
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip()]


def version_tuple(text: str) -> tuple:
    return tuple(int(x) for x in re.findall(r'\d+', text.split('+')[0])[:3])


def torch_requirement_note(version: str | None) -> str:
    """Whether the torch in use is in requirements.txt's range (the offline GPU machine
    has its own; it is used as it is)."""
    try:
        with open(os.path.join(ROOT, 'requirements.txt')) as f:
            spec = next(ln.split('#')[0].strip() for ln in f
                        if re.match(r'torch\s*[<>=!~]', ln.strip()))
    except (OSError, StopIteration):
        return ''
    if not version:
        return ''
    v, ok = version_tuple(version), True
    for op, bound in re.findall(r'(>=|<=|==|<|>)\s*([\d.]+)', spec):
        b = version_tuple(bound)
        ok &= {'>=': v >= b, '<=': v <= b, '==': v[:len(b)] == b, '<': v < b, '>': v > b}[op]
    return '' if ok else f'torch {version} is outside requirements.txt ({spec}): used as installed'


def fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else '-'


def markdown(steps, summary) -> str:
    mode = 'dry run: CPU, tiny sizes' if summary['mode'] == 'dry_run' else 'GPU'
    verdict = 'all ok' if summary['ok'] else 'FAILED: ' + ', '.join(summary['failed'])
    head = (f'gpu_check ({mode}), {summary["started"]}: {verdict}; {summary["total_s"]:.0f} s '
            f'of a {summary["budget_s"]:.0f} s budget\n\n')
    lines = ['| step | result | key numbers | s |', '|---|---|---|---|']
    for s in steps:
        detail = (s.detail or '').replace('|', '/').replace('\n', ' ')
        lines.append(f'| {s.name} | {s.result} | {detail} | {s.seconds:.1f} |')
    return head + '\n'.join(lines) + '\n'


# ============================================================================ command line

def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dry_run', action='store_true',
                   help='the same sequence on the CPU at tiny sizes (CI)')
    p.add_argument('--install', action='store_true',
                   help='(handled by gpu_check.sh: pip install -r requirements.txt first)')
    p.add_argument('--install_report', default=None, help=argparse.SUPPRESS)
    p.add_argument('--budget', type=float, default=None,
                   help='seconds for the whole check (default: 450 on the GPU, 420 dry run); '
                        'every step\'s timeout is cut to what is left')
    p.add_argument('--peak_tflops', type=float, default=989.0,
                   help='the GPU\'s dense bf16/fp16 peak for MFU (H200/H100 SXM spec: 989)')
    p.add_argument('--only', default=None, help='comma-separated steps to run (others skipped)')
    p.add_argument('--list', action='store_true',
                   help='print the steps and their command lines, run nothing')
    # the runner and the probe (internal)
    p.add_argument('--entry', choices=['train', 'train_dist', 'test', 'benchmark'],
                   help=argparse.SUPPRESS)
    p.add_argument('--result', help=argparse.SUPPRESS)
    p.add_argument('--no_tf32', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--compile_backend', default=None, help=argparse.SUPPRESS)
    p.add_argument('--probe', default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rest = []
    if '--' in argv:
        i = argv.index('--')
        argv, rest = argv[:i], argv[i + 1:]
    opts = arg_parser().parse_args(argv)
    if opts.probe:
        probe(opts.probe)
        return 0
    if opts.entry:
        run_entry(opts.entry, opts.result, rest, opts.no_tf32, opts.compile_backend)
        return 0
    check = Check(opts)
    return check.list_steps() if opts.list else check.run()


if __name__ == '__main__':
    sys.exit(main())
