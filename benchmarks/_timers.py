"""Training-step timers for the benchmarks, as callbacks of either Keras.

`step_timer(keras.callbacks.Callback)` and `hook_timer(...)` build the
callback classes for the Keras they are given (tf-keras or Keras 3), so the
pruning and Keras 3 benchmarks time steps the same way.
"""

import time

import numpy as np


def step_timer(base):
    """A `base` callback timing each step from one batch's start to the next's."""

    class StepTimer(base):
        """Wall time from one batch's start to the next's, all callbacks included.

        The first `warmup` intervals of every `fit` (tracing, caches) are
        dropped; `fits` keeps each fit's times apart, for paired ratios.
        """

        def __init__(self, warmup):
            super().__init__()
            self.warmup, self.fits, self._last, self._seen = warmup, [], None, 0
            self._supports_tf_logs = True  # tf-keras: do not force a device sync of the logs

        def on_train_begin(self, logs=None):
            self._last, self._seen = None, 0
            self.fits.append([])

        def on_train_batch_begin(self, batch, logs=None):
            now = time.perf_counter()
            if self._last is not None:
                self._seen += 1
                if self._seen > self.warmup:
                    self.fits[-1].append(now - self._last)
            self._last = now

        def ms_per_step(self):
            times = [t for fit in self.fits for t in fit]
            return 1000.0 * float(np.median(times)) if times else float("nan")

    return StepTimer


def hook_timer(base):
    """A `base` callback that runs another one and times its per-batch hooks."""

    class HookTimer(base):
        """Runs another callback and adds up the time its per-batch hooks take."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.batches = inner, 0
            self.seconds = {"on_train_batch_begin": 0.0, "on_train_batch_end": 0.0}
            self._supports_tf_logs = getattr(inner, "_supports_tf_logs", False)

        def set_model(self, model):
            super().set_model(model)
            self.inner.set_model(model)

        def set_params(self, params):
            super().set_params(params)
            self.inner.set_params(params)

        def _timed(self, hook, *args):
            start = time.perf_counter()
            getattr(self.inner, hook)(*args)
            self.seconds[hook] += time.perf_counter() - start

        def on_train_begin(self, logs=None):
            self.inner.on_train_begin(logs)

        def on_train_end(self, logs=None):
            self.inner.on_train_end(logs)

        def on_epoch_end(self, epoch, logs=None):
            self.inner.on_epoch_end(epoch, logs)

        def on_train_batch_begin(self, batch, logs=None):
            self._timed("on_train_batch_begin", batch, logs)

        def on_train_batch_end(self, batch, logs=None):
            self._timed("on_train_batch_end", batch, logs)
            self.batches += 1

        def ms_per_step(self):
            """{hook: mean ms per step}, and their "total"."""
            ms = {hook: 1000.0 * s / max(self.batches, 1) for hook, s in self.seconds.items()}
            return {**ms, "total": sum(ms.values())}

    return HookTimer


def paired_ratio(timer, reference):
    """Median over rounds of (median step time / the reference's in the same round)."""
    ratios = [np.median(a) / np.median(b) for a, b in zip(timer.fits, reference.fits)
              if a and b]
    return float(np.median(ratios)) if ratios else float("nan")
