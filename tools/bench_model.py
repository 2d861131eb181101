"""tools/benchmark.py model: training and inference clips/s of one model in several modes.

Modes: fp32 eager, --amp (bf16 autocast on CPU, fp16/bf16 on CUDA), --amp with channels_last
weights and inputs, optionally channels_last in fp32 and torch.compile. A training step is the
engine's `train_step` (normalise, autocast, loss, backward, grad scaler unscale and
--clip_gradient, step) with the engine's optimiser; an inference step normalises and runs the
model under autocast as evaluation does. The inputs are random uint8 clips already on the
device, so only the model is timed. Each mode's config is the toolkit options' Config with
--amp and --channels_last replaced (tools/bench_common.py).

Peak memory: CUDA max_memory_allocated, or the process's peak RSS on CPU (cumulative over
modes). MFU on CUDA only: conv FLOPs (2 x MACs, x3 for a training step) per second over
--peak_tflops.
"""
import resource
import time

import torch

from tools import bench_common as toolkit


def model_modes(opts) -> list[dict]:
    """The modes to time, in table order: name, amp, channels_last, compile."""
    modes = [dict(name='fp32 eager', amp=False, channels_last=False, compile=False),
             dict(name='amp', amp=True, channels_last=False, compile=False),
             dict(name='amp+channels_last', amp=True, channels_last=True, compile=False)]
    if opts.channels_last_fp32:
        modes.insert(1, dict(name='fp32 channels_last', amp=False, channels_last=True,
                             compile=False))
    if opts.compile:
        modes.append(dict(name='amp+compile', amp=True, channels_last=False, compile=True))
    if opts.modes:
        modes = [m for m in modes if m['name'] in opts.modes]
    return modes


def _peak_memory_mb(device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    # ru_maxrss is KiB on Linux: the process's peak so far (cumulative over modes).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def bench_one(model, cfg, device, compile_model: bool, opts, train: bool) -> dict:
    """Clips/s of training steps (or inference batches) of `model` under config `cfg` (one
    mode: its --amp and --channels_last), after opts.warmup untimed steps."""
    data = cfg.data
    b = cfg.optim.batch_size
    gen = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (b, data.channels, data.clip_length, data.input_size,
                                   data.input_size), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, cfg.model.num_classes, (b,), generator=gen).to(device)
    run = torch.compile(model) if compile_model else model
    if train:
        model.train()
        optimizer = toolkit.make_optimizer(model, cfg)
        scaler = toolkit.make_scaler(cfg, device)

        def step():
            return toolkit.train_step(run, clips, labels, optimizer, scaler, cfg)
    else:
        model.eval()

        def step():
            return toolkit.infer(run, clips, cfg)

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(opts.warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(opts.steps):
        step()
    _sync(device)
    dt = time.perf_counter() - t0
    return dict(clips_per_s=opts.steps * b / dt, step_s=dt / opts.steps,
                peak_mem_mb=_peak_memory_mb(device))


def bench_model(opts, rest) -> dict:
    cfg = toolkit.toolkit_config(rest, num_classes=opts.num_classes)
    devices = [opts.device] if opts.device != 'auto' else (
        ['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    modes = model_modes(opts)
    model0, arch = toolkit.build_model(cfg)
    macs = toolkit.conv_macs(model0, cfg)
    del model0
    rows = []
    for dev in devices:
        device = torch.device(dev)
        toolkit.setup_process(cfg, device)
        if device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        for mode in modes:
            mode_cfg = toolkit.with_precision(cfg, mode['amp'], mode['channels_last'])
            note = toolkit.precision_note(mode_cfg, device)
            if note and not opts.quiet:
                print(f'  note ({mode["name"]}): {note}', flush=True)
            row = dict(device=dev, mode=mode['name'])
            for train in (True, False):
                torch.manual_seed(0)
                model, _ = toolkit.build_model(mode_cfg)
                model.to(device)
                if mode['channels_last']:
                    toolkit.to_channels_last(model)
                key = 'train' if train else 'infer'
                try:
                    r = bench_one(model, mode_cfg, device, mode['compile'], opts, train)
                except Exception as exc:  # noqa: BLE001  (e.g. compile without a compiler)
                    row[f'{key}_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                    continue
                row[f'{key}_clips_per_s'] = round(r['clips_per_s'], 3)
                row[f'{key}_peak_mem_mb'] = round(r['peak_mem_mb'], 1)
                if device.type == 'cuda' and opts.peak_tflops:
                    flops = 2 * macs * (3 if train else 1) * r['clips_per_s']
                    row[f'{key}_mfu'] = round(flops / (opts.peak_tflops * 1e12), 4)
                del model
            rows.append(row)
            if not opts.quiet:
                print(f'  measured {dev} {mode["name"]}: '
                      f'train {row.get("train_clips_per_s", "-")} clips/s, '
                      f'infer {row.get("infer_clips_per_s", "-")} clips/s', flush=True)
    for dev in devices:
        ref = next((r for r in rows if r['device'] == dev and r['mode'] == 'fp32 eager'), None)
        for r in rows:
            if ref is None or r['device'] != dev:
                continue
            for key in ('train', 'infer'):
                if f'{key}_clips_per_s' in r and f'{key}_clips_per_s' in ref:
                    r[f'{key}_speedup'] = round(r[f'{key}_clips_per_s']
                                                / ref[f'{key}_clips_per_s'], 2)
    result = dict(kind='model', arch=arch, backbone_net=cfg.model.backbone_net,
                  depth=cfg.model.depth, temporal_module=toolkit.temporal_module(cfg),
                  frames=cfg.data.clip_length, input_size=cfg.data.input_size,
                  batch_size=cfg.optim.batch_size, conv_gmacs_per_clip=round(macs / 1e9, 3),
                  steps=opts.steps, machine=toolkit.machine(), rows=rows)
    return toolkit.emit(result, print_model_table, opts.quiet)


def print_model_table(r: dict) -> None:
    print(f'\nModel {r["arch"]}: {r["frames"]}x{r["input_size"]}x{r["input_size"]}, batch '
          f'{r["batch_size"]}, {r["conv_gmacs_per_clip"]} conv GMACs/clip; '
          f'{r["steps"]} timed steps')
    print(f'{"device":<6} {"mode":<20} {"train c/s":>10} {"x fp32":>7} {"infer c/s":>10} '
          f'{"x fp32":>7} {"peak MB":>9} {"MFU":>6}')
    for row in r['rows']:
        def f(key, fmt):
            v = row.get(key)
            return format(v, fmt) if v is not None else '-'
        mem = max(row.get('train_peak_mem_mb', 0), row.get('infer_peak_mem_mb', 0))
        mfu = f('train_mfu', '.1%')
        print(f'{row["device"]:<6} {row["mode"]:<20} {f("train_clips_per_s", ".2f"):>10} '
              f'{f("train_speedup", ".2f"):>7} {f("infer_clips_per_s", ".2f"):>10} '
              f'{f("infer_speedup", ".2f"):>7} {mem:>9.0f} {mfu:>6}')
        for key in ('train_error', 'infer_error'):
            if key in row:
                print(f'       {key}: {row[key]}')
