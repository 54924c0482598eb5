"""A Hydra callback for tests/test_shutdown.py: while Hydra composes the second job's config (between the first two
jobs of a sweep in the basic launcher), SIGINT reaches the process; the composition goes on for a moment and then
writes a marker file, which it only reaches if the signal was not raised inside it."""
import os
import signal
import time
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.experimental.callback import Callback


class SignalBetweenJobs(Callback):
    def __init__(self, marker: str) -> None:
        self.marker = Path(marker)

    def on_multirun_start(self, config, **kwargs) -> None:
        compose, calls, marker = ConfigLoaderImpl.load_sweep_config, [], self.marker

        def signalled(loader, *args, **kw):
            calls.append(1)
            if len(calls) == 2:  # the second job's config
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.3)  # the work of composing; a signal raised in it left OmegaConf half-built
                result = compose(loader, *args, **kw)
                marker.write_text("the composition was not interrupted")
                return result
            return compose(loader, *args, **kw)

        ConfigLoaderImpl.load_sweep_config = signalled
