"""Where a run reports: the console (through tqdm, so progress bars stay intact), a text log
file, and TensorBoard scalars. Only the main process writes; the others get a silent log."""
import os
import sys
import time

from tqdm import tqdm


class RunLog:
    def __init__(self, folder: str | None, tensorboard: bool = True, enabled: bool = True):
        self.enabled = enabled
        self.folder = folder
        self._file = None
        self._tb = None
        if enabled and folder:
            os.makedirs(folder, exist_ok=True)
            self._file = open(os.path.join(folder, 'log.txt'), 'a', buffering=1)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(log_dir=folder)

    def info(self, msg: str, console: bool = True) -> None:
        if not self.enabled:
            return
        if console:
            tqdm.write(msg, file=sys.stdout)
            sys.stdout.flush()
        if self._file:
            self._file.write(f'{time.strftime("%Y-%m-%d %H:%M:%S")} {msg}\n')

    def scalars(self, values: dict, step: int, prefix: str = '') -> None:
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f'{prefix}{k}', v, step)
            self._tb.flush()

    def progress(self, iterable, **kwargs):
        """A tqdm bar on a terminal and the main process; plain iteration elsewhere."""
        disable = not self.enabled or not sys.stderr.isatty()
        return tqdm(iterable, disable=disable, dynamic_ncols=True, leave=False, **kwargs)

    def close(self) -> None:
        if self._file:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
