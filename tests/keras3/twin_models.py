"""The same small architectures built with tf-keras or Keras 3, layer names included.

Each builder takes the Keras module (`tf_keras` or `keras`): the two APIs
agree on these layers, so one body gives twin models to compare.
"""


def plain_cnn(k):
    inputs = k.Input((8, 8, 1))
    x = k.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = k.layers.MaxPooling2D(2, name="pool")(x)
    x = k.layers.Conv2D(6, 2, name="conv2")(x)
    x = k.layers.Flatten(name="flatten")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


def residual(k):
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = k.layers.BatchNormalization(name="stem_bn")(x)
    x = k.layers.ReLU(name="stem_relu")(x)
    y = k.layers.Conv2D(8, 3, padding="same", name="branch")(x)
    y = k.layers.BatchNormalization(name="branch_bn")(y)
    x = k.layers.Add(name="add")([x, y])
    x = k.layers.ReLU(name="relu")(x)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


def squeeze_excite(k):
    inputs = k.Input((6, 6, 3))
    x = k.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    s = k.layers.GlobalAveragePooling2D(name="squeeze")(x)
    s = k.layers.Dense(2, activation="relu", name="reduce")(s)
    s = k.layers.Dense(8, activation="sigmoid", name="expand")(s)
    s = k.layers.Reshape((1, 1, 8), name="reshape")(s)
    x = k.layers.Multiply(name="excite")([x, s])
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


def depthwise_separable(k):
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = k.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = k.layers.SeparableConv2D(5, 2, activation="relu", name="separable")(x)
    x = k.layers.GlobalMaxPooling2D(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


def concatenated(k):
    inputs = k.Input((6, 6, 3))
    a = k.layers.Conv2D(4, 1, activation="relu", name="left")(inputs)
    b = k.layers.Conv2D(5, 3, padding="same", activation="relu", name="right")(inputs)
    x = k.layers.Concatenate(name="concat")([a, b])
    x = k.layers.Conv2D(6, 1, name="mix")(x)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


def sequential(k):
    return k.Sequential([
        k.Input((10,)), k.layers.Dense(8, activation="relu", name="hidden"),
        k.layers.Dropout(0.1, name="dropout"), k.layers.Dense(3, name="logits")])


def raw_ops(k):
    """Python operators on Keras tensors: TFOpLambda layers in tf-keras, Operations in Keras 3."""
    inputs = k.Input((6, 6, 3))
    x = k.layers.Conv2D(4, 3, name="conv")(inputs)
    y = k.layers.Conv2D(4, 3, name="other")(inputs)
    x = (x + y) * 0.5
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


ARCHITECTURES = [plain_cnn, residual, squeeze_excite, depthwise_separable, concatenated,
                 sequential, raw_ops]
