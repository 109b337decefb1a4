"""tfopt-prune: prune a saved Keras model during a short fine-tune and save the result.

Example:
  tfopt-prune --model=model.keras --output=pruned.keras --data=digits \\
      --sparsity=0.8 --structure=channels --criterion=taylor --epochs=3 --shrink

The model must be a `.keras` file of a Sequential or Functional tf_keras model.
Its compiled loss is reused when it has one; otherwise sparse categorical cross
entropy (on logits unless --nofrom_logits). The output is written to a
temporary file and renamed into place, so it is never half-written.
"""

import os

import tfopt  # noqa: F401  (selects Keras 2 before TensorFlow loads)

import numpy as np
import tf_keras as keras
from absl import app
from absl import flags

from tfopt import _files
from tfopt import datasets
from tfopt import pruning

_MODEL = flags.DEFINE_string("model", None, "Input model, a .keras file.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the pruned .keras model.",
                              required=True)
_DATA = flags.DEFINE_string(
    "data", "digits", "'digits', 'fashion_mnist', or an .npz file with x_train, y_train "
    "(and optionally x_test, y_test).")
_SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Final sparsity, in [0, 1).")
_STRUCTURE = flags.DEFINE_string("structure", "unstructured",
                                 "'unstructured', 'channels' or N:M such as '2:4'.")
_CRITERION = flags.DEFINE_enum("criterion", "magnitude", ["magnitude", "l2", "random", "taylor"],
                               "Which weights to keep.")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Fine-tune epochs.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
_FROM_LOGITS = flags.DEFINE_boolean("from_logits", True,
                                    "Whether the model outputs logits (default loss only).")
_SHRINK = flags.DEFINE_boolean("shrink", False,
                               "Remove pruned channels (needs --structure=channels).")


def load_data(name):
    """((x_train, y_train), (x_test, y_test)) from a data set name or an .npz file."""
    if name == "digits":
        return datasets.load_digits()
    if name == "fashion_mnist":
        return datasets.load_fashion_mnist()
    if name.endswith(".npz") and os.path.isfile(name):
        with np.load(name) as data:
            if "x_train" not in data or "y_train" not in data:
                raise app.UsageError(f"{name} must hold arrays x_train and y_train; it has "
                                     f"{sorted(data.keys())}.")
            train = (data["x_train"], data["y_train"])
            test = (data["x_test"], data["y_test"]) if "x_test" in data else train
            return train, test
    raise app.UsageError(f"--data={name!r}: use 'digits', 'fashion_mnist' or an existing .npz file.")


def _structure(text):
    if ":" in text:
        return tuple(int(part) for part in text.split(":"))
    return text


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def save_atomically(model, path):
    """Saves to a temporary file beside `path`, then renames it into place."""
    with _files.atomic_path(path) as temporary:
        model.save(temporary)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _OUTPUT.value.endswith(".keras"):
        raise app.UsageError(f"--output={_OUTPUT.value!r} must end in .keras.")
    if not os.path.isfile(_MODEL.value):
        raise app.UsageError(f"--model={_MODEL.value!r} does not exist.")
    if _SHRINK.value and _STRUCTURE.value != "channels":
        raise app.UsageError("--shrink needs --structure=channels.")
    (x_train, y_train), (x_test, y_test) = load_data(_DATA.value)
    model = keras.models.load_model(_MODEL.value)
    loss = getattr(model, "loss", None) or keras.losses.SparseCategoricalCrossentropy(
        from_logits=_FROM_LOGITS.value)

    steps = _EPOCHS.value * int(np.ceil(len(x_train) / _BATCH_SIZE.value))
    schedule = pruning.PolynomialDecay(0.0, _SPARSITY.value, begin_step=0,
                                       end_step=max(1, (2 * steps) // 3),
                                       frequency=max(1, steps // 30))
    pruned = pruning.prune(model, schedule, criterion=_CRITERION.value,
                           structure=_structure(_STRUCTURE.value))
    pruned.compile(keras.optimizers.Adam(_LEARNING_RATE.value), loss, metrics=["accuracy"])
    pruned.fit(x_train, y_train, batch_size=_BATCH_SIZE.value, epochs=_EPOCHS.value, verbose=2,
               callbacks=[pruning.UpdatePruningStep()])
    result = pruning.shrink(pruned) if _SHRINK.value else pruning.strip(pruned)
    result.compile(loss=loss, metrics=["accuracy"])
    save_atomically(result, _OUTPUT.value)

    print(pruning.sparsity_report(result))
    print(f"accuracy: {_accuracy(model, x_test, y_test):.4f} before, "
          f"{_accuracy(result, x_test, y_test):.4f} after; parameters: "
          f"{model.count_params():,} before, {result.count_params():,} after")
    print(f"wrote {_OUTPUT.value}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
