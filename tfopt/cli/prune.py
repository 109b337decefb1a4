"""tfopt-prune: prune a saved Keras model during a short fine-tune and save the result.

Example:
  tfopt-prune --model=model.keras --output=pruned.keras --data=digits \\
      --sparsity=0.8 --structure=channels --criterion=taylor --epochs=3 --shrink

The model must be a classifier saved by tf_keras (a .keras file, or a legacy
.h5 one), Sequential or Functional, with one input and a (batch, classes)
output; labels are integer classes. Its compiled loss is reused when it has
one; otherwise sparse categorical cross entropy (on logits unless
--nofrom_logits). The output is written to a temporary file and renamed into
place, so it is never half-written.

Exit status: 0 done, 2 bad flags or input files (nothing is trained), 1 a
failure during the run (nothing is written). Set TFOPT_VERBOSE=1 to see
TensorFlow's own log lines and the traceback of a failure.
"""

import sys

import tfopt  # noqa: F401  (selects Keras 2 before TensorFlow loads)

import numpy as np
import tf_keras as keras
from absl import flags

from tfopt import _files
from tfopt import pruning
from tfopt.cli import _app
from tfopt.cli import _flags
from tfopt.cli import _inputs

_MODEL = _flags.shared_string(
    "model", "Input model: a .keras (or legacy .h5) file, or for tfopt-export also a tf_keras "
    "SavedModel directory (required).", __name__)
_OUTPUT = flags.DEFINE_string("output", None,
                              "Where to write the pruned model, a .keras file (required).")
_DATA = _flags.shared_string(
    "data", "'digits', 'fashion_mnist', or an .npz file with x_train, y_train (and optionally "
    "x_test, y_test).", __name__, default="digits")
_SPARSITY = _flags.shared_float(
    "sparsity", 0.8, "Final sparsity, in [0, 1).", __name__,
    check=(lambda value: 0.0 <= value < 1.0,
           "must be in [0, 1): the fraction of weights set to zero"))
_STRUCTURE = flags.DEFINE_string("structure", "unstructured",
                                 "'unstructured', 'channels' or N:M such as '2:4'.")
_CRITERION = _flags.shared_enum("criterion", "magnitude", ["magnitude", "l2", "random", "taylor"],
                                "Which weights to keep.", __name__)
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Fine-tune epochs.", lower_bound=1)
_BATCH_SIZE = _flags.shared_integer("batch_size", 32, "Batch size.", __name__,
                                    check=(lambda value: value >= 1, "must be at least 1"))
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate, above 0.")
_FROM_LOGITS = flags.DEFINE_boolean("from_logits", True,
                                    "Whether the model outputs logits (default loss only).")
_SHRINK = flags.DEFINE_boolean("shrink", False,
                               "Remove pruned channels (needs --structure=channels).")


def parse_structure(text):
    """'unstructured', 'channels', or an (n, m) pair from 'N:M' with 0 < N < M; else None."""
    if text in ("unstructured", "channels"):
        return text
    parts = text.split(":")
    if len(parts) == 2 and all(part.strip().isdigit() for part in parts):
        n, m = (int(part) for part in parts)
        if 0 < n < m:
            return n, m
    return None


flags.register_validator("structure", lambda text: parse_structure(text) is not None,
                         "use 'unstructured', 'channels', or N:M with 0 < N < M such as '2:4'")
flags.register_validator("learning_rate", lambda value: value > 0,
                         "must be above 0, e.g. 1e-3")


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and remembers where."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.failure = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.failure = f"the loss became {loss} in epoch {self.epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def save_atomically(model, path):
    """Saves to a temporary file beside `path`, then renames it into place."""
    with _files.atomic_path(path) as temporary:
        model.save(temporary)


def _validate_flag_combination(argv):
    if len(argv) > 1:
        raise _app.UsageError(f"unexpected arguments {argv[1:]}; every input is a flag, "
                              "e.g. --model=model.keras.")
    missing = [flag for flag, value in (("--model", _MODEL.value), ("--output", _OUTPUT.value))
               if not value]
    if missing:
        raise _app.UsageError(f"missing {' and '.join(missing)}: the tool reads a model from "
                              "--model and writes the pruned one to --output.")
    if _SHRINK.value and _STRUCTURE.value != "channels":
        raise _app.UsageError("--shrink needs --structure=channels.")


def main(argv):
    _validate_flag_combination(argv)
    _inputs.validate_output(_OUTPUT.value)
    model_given = f"--model={_MODEL.value!r}"
    model = _inputs.load_model(_MODEL.value)
    _inputs.validate_classifier(model, model_given)
    (x_train, y_train), (x_test, y_test) = _inputs.fit_data(
        model, *_inputs.load_data(_DATA.value), given=f"--data={_DATA.value!r}")
    loss = getattr(model, "loss", None) or keras.losses.SparseCategoricalCrossentropy(
        from_logits=_FROM_LOGITS.value)

    steps = _EPOCHS.value * int(np.ceil(len(x_train) / _BATCH_SIZE.value))
    schedule = pruning.PolynomialDecay(0.0, _SPARSITY.value, begin_step=0,
                                       end_step=max(1, (2 * steps) // 3),
                                       frequency=max(1, steps // 30))
    try:
        pruned = pruning.prune(model, schedule, criterion=_CRITERION.value,
                               structure=parse_structure(_STRUCTURE.value))
    except (ValueError, TypeError) as error:
        raise _app.UsageError(f"{model_given} cannot be pruned: {error}") from error
    pruned.compile(keras.optimizers.Adam(_LEARNING_RATE.value), loss, metrics=["accuracy"])
    divergence = _StopOnNonFiniteLoss()
    pruned.fit(x_train, y_train, batch_size=_BATCH_SIZE.value, epochs=_EPOCHS.value, verbose=2,
               callbacks=[pruning.UpdatePruningStep(), divergence])
    if not divergence.failure and not all(np.isfinite(w).all() for w in pruned.get_weights()):
        divergence.failure = "the weights hold NaN or infinite values after training"
    if divergence.failure:
        raise _app.Failure(f"training diverged: {divergence.failure}; nothing was written. "
                           f"Try a lower --learning_rate (now {_LEARNING_RATE.value:g}).")
    result = pruning.shrink(pruned) if _SHRINK.value else pruning.strip(pruned)
    result.compile(loss=loss, metrics=["accuracy"])
    save_atomically(result, _OUTPUT.value)

    print(pruning.sparsity_report(result))
    print(f"accuracy: {_accuracy(model, x_test, y_test):.4f} before, "
          f"{_accuracy(result, x_test, y_test):.4f} after; parameters: "
          f"{model.count_params():,} before, {result.count_params():,} after")
    print(f"wrote {_OUTPUT.value}")


def run(argv=None):
    """Runs tfopt-prune on `argv` (default: sys.argv) and exits with its status."""
    _app.run(main, "tfopt-prune", sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
