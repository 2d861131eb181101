#!/usr/bin/env python3
"""A Python that starts in milliseconds, for the tests' subprocesses: a server that has
imported torch and the project once forks a child for each command.

The suite runs a few hundred real processes (every entrypoint and tool as a user starts it);
each used to spend ~2.5 s of CPU importing torch. Here:

- `start()` launches the server (`python forkserver.py serve SOCKET`): it imports torch, numpy,
  PIL, PyAV, LMDB, pyarrow, matplotlib and the project's modules, runs no torch op (so no
  thread pool exists, and forking is safe), and waits on a Unix socket;
- the client, `tests/fastpython` (a drop-in for `python3` on a command line:
  `fastpython train.py --epochs 1`, `fastpython -m MOD`, `fastpython -c CODE`), sends its
  argv, working folder, environment, memory limit and its stdin/stdout/stderr (SCM_RIGHTS) to
  the server, which forks; the child takes those descriptors, resets its signals, and runs the
  command as `python3` would. The client forwards SIGINT and SIGTERM to the child and ends as
  the child ended: its exit status, or killed by the same signal. If the client dies (SIGKILL),
  the server kills the child.

A command that needs a fresh interpreter for its own children (mp.spawn, torchrun's workers)
still gets one: `sys.executable` is the real interpreter. Without the server (FASTPYTHON_SOCKET
unset) `fastpython` is plain `python3`.
"""
import array
import json
import os
import resource
import select
import signal
import socket
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = os.path.join(ROOT, 'tests', 'fastpython')
PRELOAD = ('torch', 'numpy', 'PIL.Image', 'av', 'lmdb', 'pyarrow', 'tqdm', 'safetensors.torch',
           'matplotlib.pyplot', 'torch.utils.tensorboard', 'torch.distributed.run',
           'opts', 'train', 'train_dist', 'test', 'utils.engine', 'utils.video_reader',
           'tools.annotations', 'tools.build_lmdb', 'tools.check_dataset', 'tools.extract_frames',
           'tools.predict', 'tools.report', 'tools.export_weights', 'tools.gpu_check',
           'tools.benchmark')


# ----------------------------------------------------------------------------- the server

def serve(path: str) -> None:
    import importlib
    import matplotlib
    matplotlib.use('Agg')
    sys.path.insert(0, ROOT)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that does not import is imported by the child
            pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    import threading
    if threading.active_count() != 1:          # a thread would make forking unsafe
        print(f'threads: {threading.active_count()}', flush=True)
        return
    print('ready', flush=True)
    children = {}                              # pid -> client connection
    wake_read, wake_write = os.pipe()          # SIGCHLD writes a byte: select wakes at once
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *a: None)
    while True:
        ready, _, _ = select.select([listener, wake_read, *children.values()], [], [], 5.0)
        for conn in ready:
            if conn == wake_read:
                os.read(wake_read, 4096)
            elif conn is listener:
                client, _ = listener.accept()
                pid = start_child(client)
                if pid:
                    children[pid] = client
            else:                              # a client that went away: its child too
                pid = next(p for p, c in children.items() if c is conn)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            client = children.pop(pid, None)
            if client is not None:
                try:
                    client.sendall(struct.pack('!i', status))
                except OSError:
                    pass
                client.close()


def start_child(client: socket.socket) -> int:
    size = struct.unpack('!I', recv_exactly(client, 4))[0]
    message, fds, _, _ = socket.recv_fds(client, size, 3)
    while len(message) < size:
        message += client.recv(size - len(message))
    request = json.loads(message)
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        client.sendall(struct.pack('!i', pid))
        return pid
    try:
        signal.set_wakeup_fd(-1)
        client.close()
        run_child(request, fds)
    finally:
        os._exit(1)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def run_child(request: dict, fds: list) -> None:
    """In the forked child: become the client's process and run its command."""
    import runpy
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if request['rlimit_as'] is not None:
        resource.setrlimit(resource.RLIMIT_AS, tuple(request['rlimit_as']))
    os.chdir(request['cwd'])
    os.environ.clear()
    os.environ.update(request['env'])
    threads = os.environ.get('OMP_NUM_THREADS')
    import torch
    if threads:
        torch.set_num_threads(int(threads))
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, 'w', buffering=1 if os.environ.get('PYTHONUNBUFFERED') else -1,
                      closefd=False)
    sys.stderr = open(2, 'w', buffering=1, closefd=False)
    code = 0
    try:
        argv = request['argv']
        if argv[0] == '-u':
            argv = argv[1:]
        if argv[0] == '-c':
            sys.argv = ['-c', *argv[2:]]
            sys.path[0] = ''
            exec(compile(argv[1], '<string>', 'exec'), {'__name__': '__main__'})
        elif argv[0] == '-m':
            sys.argv = [argv[1], *argv[2:]]
            sys.path[0] = request['cwd']
            sys.modules.pop(argv[1], None)     # preloaded: run it afresh as __main__
            runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
            runpy.run_path(argv[0], run_name='__main__')
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        import traceback
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - as the interpreter: the traceback, status 1
        import traceback
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code & 0xFF)


# ----------------------------------------------------------------------------- the client

def client(argv: list) -> None:
    path = os.environ.get('FASTPYTHON_SOCKET')
    if not path or not os.path.exists(path) or not argv:
        os.execv(sys.executable, [sys.executable, *argv])
    limit = resource.getrlimit(resource.RLIMIT_AS)
    request = json.dumps(dict(argv=argv, cwd=os.getcwd(), env=dict(os.environ),
                              rlimit_as=None if limit[0] == resource.RLIM_INFINITY
                              else list(limit))).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(struct.pack('!I', len(request)))
    socket.send_fds(sock, [request], [0, 1, 2])
    pid = struct.unpack('!i', recv_exactly(sock, 4))[0]

    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    while True:
        try:
            status = struct.unpack('!i', recv_exactly(sock, 4))[0]
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    sys.exit(os.WEXITSTATUS(status))


# ----------------------------------------------------------------------------- for the tests

_SERVER = None


def start(folder: str) -> str | None:
    """Start the server (once a session) with its socket in `folder`; set FASTPYTHON_SOCKET so
    that `fastpython` uses it; returns the client's path (None where it cannot run: no fork,
    no Unix sockets)."""
    global _SERVER
    import subprocess
    if not hasattr(os, 'fork') or not hasattr(socket, 'send_fds'):
        return None
    path = os.path.join(folder, 'fastpython.sock')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    os.environ['FASTPYTHON_PYTHON'] = sys.executable
    _SERVER = subprocess.Popen([sys.executable, __file__, 'serve', path], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if _SERVER.stdout.readline().strip() != 'ready':
        stop()
        return None
    os.environ['FASTPYTHON_SOCKET'] = path
    return CLIENT


def stop() -> None:
    global _SERVER
    os.environ.pop('FASTPYTHON_SOCKET', None)
    if _SERVER is not None:
        _SERVER.kill()
        _SERVER.wait()
        _SERVER = None


if __name__ == '__main__':
    if sys.argv[1:2] == ['serve']:
        serve(sys.argv[2])
    else:
        client(sys.argv[1:])
