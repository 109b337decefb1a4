"""packed_weight_bytes on tiny models, counted by hand."""

import pytest
import tf_keras as keras

from tfopt import quantization

L = keras.layers


def _mlp():
    # kernels 5x4, 4x6, 6x3, 3x2 (20, 24, 18, 6 weights); biases 4, 6, 3, 2.
    return keras.Sequential([keras.Input((5,)), L.Dense(4, name="a"), L.Dense(6, name="b"),
                             L.Dense(3, name="c"), L.Dense(2, name="d")])


def _cnn():
    # conv kernel 2x2x1x3 (12 weights, 3 channels), bias 3; dense 27x2, bias 2.
    return keras.Sequential([keras.Input((4, 4, 1)), L.Conv2D(3, 2, name="conv"), L.Flatten(),
                             L.Dense(2, name="d")])


# int8 Dense: 1 byte/weight + one float32 scale per tensor (tfmot's per-tensor Dense).
# Binary/ternary/FixedPoint(4): ceil(n*bits/8) bytes + one float32 scale per channel.
# First and last Dense stay int8 ("first_last"): a = 20+4+16 = 40, d = 6+4+8 = 18.
CASES = [
    ("float", _mlp, None, 4 * 83),
    ("int8", _mlp, "int8", 40 + (24 + 4 + 24) + (18 + 4 + 12) + 18),
    ("binary", _mlp, "binary", 40 + (3 + 24 + 24) + (3 + 12 + 12) + 18),
    ("ternary", _mlp, "ternary", 40 + (6 + 24 + 24) + (5 + 12 + 12) + 18),
    ("fixed4", _mlp, quantization.FixedPoint(4), 40 + (12 + 24 + 24) + (9 + 12 + 12) + 18),
    # int8 Conv2D is per channel: 12 bytes + 3 scales + bias.
    ("int8_conv", _cnn, "int8", (12 + 12 + 12) + (54 + 4 + 8)),
]


@pytest.mark.parametrize("name,build,scheme,expected", CASES, ids=[c[0] for c in CASES])
def test_packed_weight_bytes(name, build, scheme, expected):
    model = build()
    if scheme is not None:
        model = quantization.quantize(model, scheme)
    assert quantization.packed_weight_bytes(model) == expected
