"""The 14 real architectures of issue 9, as small deterministic test models.

Eleven come from `tf_keras.applications` (weights=None, 10 classes, the smallest
input each accepts: 32x32x3, Xception 71x71x3), with every default kept,
`include_preprocessing` included. Three are common non-vision models built
here: an Embedding+LSTM text classifier (int32 tokens), a Conv1D+BatchNorm
audio model and a Transformer encoder block (MultiHeadAttention,
LayerNormalization).

Every model ends in a softmax, as users' models do: the applications' last
layer is a Dense (or, in MobileNet and MobileNetV3Small, an Activation) with
`activation="softmax"` because `classifier_activation` keeps its default, and
the three models built here follow suit. Outputs are therefore probabilities
(`OUTPUTS`): compile with `from_logits=False` (`compile_model` does) and pass
`teacher_outputs="probabilities"` to a `distillation.Distiller`.

    model = architectures.build("ResNet50V2", seed=0)
    x, y = architectures.example_batch("ResNet50V2", n=4)
    architectures.compile_model(model).fit(x, y, verbose=0)
"""


import numpy as np
import tf_keras as keras

NUM_CLASSES = 10
OUTPUTS = "probabilities"
VOCABULARY = 100  # text model: tokens are int32 in [0, VOCABULARY)
SEQUENCE_LENGTH = 16  # text and Transformer models: time steps
AUDIO_LENGTH = 64  # audio model: samples of a mono signal
FEATURES = 8  # Transformer model: features per time step

# name -> (constructor, input side). The applications check their minimum size.
_APPLICATIONS = {
    "MobileNet": ("MobileNet", 32),
    "MobileNetV2": ("MobileNetV2", 32),
    "MobileNetV3Small": ("MobileNetV3Small", 32),
    "EfficientNetB0": ("EfficientNetB0", 32),
    "EfficientNetV2B0": ("EfficientNetV2B0", 32),
    "ResNet50": ("ResNet50", 32),
    "ResNet50V2": ("ResNet50V2", 32),
    "DenseNet121": ("DenseNet121", 32),
    "NASNetMobile": ("NASNetMobile", 32),
    "Xception": ("Xception", 71),  # "Input size must be at least 71x71"
    "ConvNeXtTiny": ("ConvNeXtTiny", 32),
}
# These rescale raw 0-255 pixels themselves (include_preprocessing / Rescaling
# layers); the others expect already preprocessed values, about [-1, 1].
_RAW_PIXELS = ("MobileNetV3Small", "EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny")


def _text_lstm():
    layers = keras.layers
    return keras.Sequential([
        keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="tokens"),
        layers.Embedding(VOCABULARY, 16, name="embedding"),
        layers.LSTM(16, name="lstm"),
        layers.Dense(NUM_CLASSES, activation="softmax", name="predictions"),
    ], name="text_lstm")


def _audio_conv1d():
    layers = keras.layers
    inputs = keras.Input((AUDIO_LENGTH, 1), name="signal")
    x = inputs
    for i, filters in enumerate((16, 32, 64)):
        x = layers.Conv1D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < 2:
            x = layers.MaxPooling1D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="audio_conv1d")


def _transformer_encoder(width=32, heads=2, hidden=64):
    layers = keras.layers
    inputs = keras.Input((SEQUENCE_LENGTH, FEATURES), name="frames")
    x = layers.Dense(width, name="projection")(inputs)
    attended = layers.MultiHeadAttention(heads, width // heads, name="attention")(x, x)
    x = layers.LayerNormalization(name="attention_norm")(
        layers.Add(name="attention_residual")([x, attended]))
    fed = layers.Dense(hidden, activation="relu", name="ffn_hidden")(x)
    fed = layers.Dense(width, name="ffn_output")(fed)
    x = layers.LayerNormalization(name="ffn_norm")(layers.Add(name="ffn_residual")([x, fed]))
    x = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="transformer_encoder")


_BUILT_HERE = {
    "TextLSTM": _text_lstm,
    "AudioConv1D": _audio_conv1d,
    "TransformerEncoder": _transformer_encoder,
}

NAMES = tuple(_APPLICATIONS) + tuple(_BUILT_HERE)


def _validate_name(name):
    if name not in NAMES:
        raise ValueError(f"`name` must be one of {', '.join(NAMES)}; got {name!r}.")


def input_shape(name):
    """The model's input shape without the batch axis, e.g. (32, 32, 3)."""
    _validate_name(name)
    if name in _APPLICATIONS:
        side = _APPLICATIONS[name][1]
        return (side, side, 3)
    return {"TextLSTM": (SEQUENCE_LENGTH,), "AudioConv1D": (AUDIO_LENGTH, 1),
            "TransformerEncoder": (SEQUENCE_LENGTH, FEATURES)}[name]


def build(name, seed=0):
    """A fresh, untrained model; the same `seed` gives the same weights.

    Args:
      name: one of `NAMES`.
      seed: seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`)
        before the layers are created. Defaults to 0.

    Returns:
      A Functional (TextLSTM: Sequential) tf_keras model with one input of
      `input_shape(name)` and a (batch, 10) softmax output.
    """
    _validate_name(name)
    keras.utils.set_random_seed(seed)
    if name in _BUILT_HERE:
        return _BUILT_HERE[name]()
    constructor = getattr(keras.applications, _APPLICATIONS[name][0])
    return constructor(weights=None, classes=NUM_CLASSES, input_shape=input_shape(name))


def example_batch(name, n=4, seed=0):
    """`n` synthetic examples `(x, y)` in the range the model expects.

    Images are uniform pixels (0-255 for the applications that rescale their own
    input, [-1, 1] for the others), tokens uniform int32 in [0, VOCABULARY),
    signals and frames standard normal; labels uniform int32 in [0, 10).
    """
    _validate_name(name)
    rng = np.random.default_rng(seed)
    shape = (n,) + input_shape(name)
    if name == "TextLSTM":
        x = rng.integers(0, VOCABULARY, shape, dtype=np.int32)
    elif name in _BUILT_HERE:
        x = rng.standard_normal(shape).astype(np.float32)
    elif name in _RAW_PIXELS:
        x = rng.uniform(0.0, 255.0, shape).astype(np.float32)
    else:
        x = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, (n,), dtype=np.int32)
    return x, y


def compile_model(model, learning_rate=1e-3, run_eagerly=False):
    """Compiles `model` for its softmax output: Adam, sparse cross entropy, accuracy.

    Args:
      model: a model from `build` (or a pruned, quantized or narrowed copy).
      learning_rate: Adam's learning rate. Defaults to 1e-3.
      run_eagerly: train without tracing a graph. Tracing the training step of
        the larger applications costs tens of seconds to minutes on a small
        machine, far more than one eager step; use it for tests that train a
        step or two. Defaults to False.

    Returns:
      `model`, compiled.
    """
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=False),
                  metrics=["accuracy"], run_eagerly=run_eagerly)
    return model
