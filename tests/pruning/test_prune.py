"""prune() and strip() across layer types, structures, criteria and model shapes."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import pruning
from tests.conftest import compile_model, max_abs_diff, small_cnn, subclassed_model

L = keras.layers


def _fit(model, x, y, steps=4, callbacks=None, batch_size=32):
    compile_model(model)
    model.fit(x[:steps * batch_size], y[:steps * batch_size], batch_size=batch_size, epochs=1,
              verbose=0, callbacks=[pruning.UpdatePruningStep()] if callbacks is None else callbacks)
    return model


def _wrapped(model):
    return {w.layer.name: w for w in pruning._prune.wrappers(model)}


def _sequence_data(n=128, steps=6, vocab=20, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocab, size=(n, steps))
    return tokens, (tokens.sum(axis=1) % 3).astype("int32")


LAYER_MODELS = {
    "Dense": lambda: keras.Sequential([keras.Input((12,)), L.Dense(16, name="target"), L.Dense(3)]),
    "Conv1D": lambda: keras.Sequential([keras.Input((8, 4)), L.Conv1D(8, 3, name="target"),
                                        L.Flatten(), L.Dense(3)]),
    "Conv2D": lambda: keras.Sequential([keras.Input((6, 6, 4)), L.Conv2D(8, 3, name="target"),
                                        L.Flatten(), L.Dense(3)]),
    "DepthwiseConv2D": lambda: keras.Sequential([keras.Input((6, 6, 4)),
                                                 L.DepthwiseConv2D(3, depth_multiplier=2, name="target"),
                                                 L.Flatten(), L.Dense(3)]),
    "SeparableConv2D": lambda: keras.Sequential([keras.Input((6, 6, 4)),
                                                 L.SeparableConv2D(8, 3, name="target"),
                                                 L.Flatten(), L.Dense(3)]),
    "Embedding": lambda: keras.Sequential([keras.Input((6,)), L.Embedding(20, 8, name="target"),
                                           L.GlobalAveragePooling1D(), L.Dense(3)]),
    "LSTM": lambda: keras.Sequential([keras.Input((6, 4)), L.LSTM(8, name="target"), L.Dense(3)]),
    "GRU": lambda: keras.Sequential([keras.Input((6, 4)), L.GRU(8, name="target"), L.Dense(3)]),
}


def _inputs_for(name, model, n=128):
    rng = np.random.default_rng(0)
    if name == "Embedding":
        return _sequence_data(n)
    x = rng.normal(size=(n,) + tuple(model.input_shape[1:])).astype("float32")
    return x, rng.integers(0, 3, size=n).astype("int32")


@pytest.mark.parametrize("name", sorted(LAYER_MODELS))
def test_each_layer_type_prunes_to_target_and_strips_exactly(name):
    keras.utils.set_random_seed(0)
    model = LAYER_MODELS[name]()
    x, y = _inputs_for(name, model)
    pruned = pruning.prune(model, pruning.OneShot(0.5, step=0))
    _fit(pruned, x, y)
    target = _wrapped(pruned)["target"]
    for path, mask in target.masks().items():
        assert abs(1 - mask.mean() - 0.5) < 0.02, (path, mask.mean())
    plain = pruning.strip(pruned)
    assert not any(isinstance(l, pruning.PruneWrapper) for l in plain.layers)
    assert max_abs_diff(plain.predict(x, verbose=0), pruned.predict(x, verbose=0)) < 1e-5
    pruned_zeros = sum(int((mask == 0).sum()) for mask in target.masks().values())
    assert pruning.sparsity_report(plain).layers[0].zeros >= pruned_zeros


def test_prune_does_not_modify_the_input_model(digits):
    x, y = digits
    model = small_cnn()
    before = [w.copy() for w in model.get_weights()]
    _fit(pruning.prune(model, pruning.OneShot(0.8)), x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_pruned_model_starts_with_the_same_predictions(digits):
    x, _ = digits
    model = small_cnn()
    pruned = pruning.prune(model, pruning.ConstantSparsity(0.5, begin_step=10))
    assert max_abs_diff(model.predict(x[:64], verbose=0), pruned.predict(x[:64], verbose=0)) < 1e-5


def test_weightless_layers_pass_through_and_all_supported_are_wrapped():
    pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5))
    assert set(_wrapped(pruned)) == {"conv_a", "conv_b", "hidden", "logits"}
    assert isinstance(pruned.get_layer("bn"), L.BatchNormalization)
    assert isinstance(pruned.get_layer("flatten"), L.Flatten)


def test_nested_models_are_pruned(digits):
    x, y = digits
    inner = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu", name="inner_conv"),
                              L.Flatten()], name="features")
    inputs = keras.Input((8, 8, 1))
    outputs = L.Dense(10, name="head")(inner(inputs))
    model = keras.Model(inputs, outputs)
    pruned = pruning.prune(model, pruning.OneShot(0.6))
    assert set(_wrapped(pruned)) == {"inner_conv", "head"}
    _fit(pruned, x, y)
    assert abs(_wrapped(pruned)["inner_conv"].sparsity() - 0.6) < 0.02
    assert max_abs_diff(pruning.strip(pruned).predict(x[:64], verbose=0),
                        pruned.predict(x[:64], verbose=0)) < 1e-5


def test_layers_by_name_and_by_predicate():
    by_name = pruning.prune(small_cnn(), pruning.OneShot(0.5), layers=["conv_b", "hidden"])
    assert set(_wrapped(by_name)) == {"conv_b", "hidden"}
    by_predicate = pruning.prune(small_cnn(), pruning.OneShot(0.5),
                                 layers=lambda layer: isinstance(layer, L.Conv2D))
    assert set(_wrapped(by_predicate)) == {"conv_a", "conv_b"}


@pytest.mark.parametrize("kwargs,match", [
    ({"layers": ["bn"]}, "Layer 'bn' of type BatchNormalization cannot be pruned. Supported: Dense"),
    ({"layers": ["nope"]}, r"No layer named \['nope'\].*conv_a"),
    ({"layers": ["logits"], "structure": "channels"},
     "Layer 'logits' cannot be channel-pruned: its channels reach the model output"),
    ({"layers": ["conv_a"], "structure": (2, 4)}, "N:M needs an input axis divisible by M"),
    ({"criterion": "size"}, "Unknown pruning criterion"),
    ({"structure": "rows"}, "Unknown pruning structure"),
    ({"layers": lambda layer: False}, "prune found nothing to prune"),
])
def test_bad_requests_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pruning.prune(small_cnn(), pruning.OneShot(0.5), **kwargs)


def test_subclassed_model_is_rejected():
    net = subclassed_model()
    with pytest.raises(ValueError, match="subclassed model.*Functional API"):
        pruning.prune(net, pruning.OneShot(0.5))


def test_keras3_model_is_rejected_with_a_hint():
    import keras as keras3
    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2)])
    with pytest.raises(ValueError, match="Keras 3 object.*import tf_keras as keras"):
        pruning.prune(model, pruning.OneShot(0.5))


def test_schedule_must_be_a_schedule():
    with pytest.raises(ValueError, match="schedule must be a pruning schedule"):
        pruning.prune(small_cnn(), 0.8)


def test_tfmot_schedule_is_accepted(digits):
    x, y = digits
    pruned = pruning.prune(small_cnn(), tfmot.sparsity.keras.ConstantSparsity(0.7, 0, frequency=2))
    _fit(pruned, x, y)
    assert abs(_wrapped(pruned)["hidden"].sparsity() - 0.7) < 0.01


def test_polynomial_decay_raises_sparsity_during_fit(digits):
    x, y = digits
    pruned = pruning.prune(small_cnn(), pruning.PolynomialDecay(0.0, 0.8, 0, 8, frequency=2))
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(_wrapped(pruned)["hidden"].sparsity()))
    _fit(pruned, x, y, steps=10, callbacks=[pruning.UpdatePruningStep(), record])
    assert seen[0] == 0.0
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert abs(seen[-1] - 0.8) < 0.01


@pytest.mark.parametrize("criterion", ["magnitude", "l2", "random", "taylor"])
def test_each_criterion_reaches_sparsity_and_masks_only_grow(digits, criterion):
    x, y = digits
    pruned = pruning.prune(small_cnn(), pruning.Iterative([(0.4, 3), (0.7, 3)]), criterion=criterion)
    first = {}
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: first.setdefault(
        batch, _wrapped(pruned)["hidden"].masks()["kernel"]))
    _fit(pruned, x, y, steps=6, callbacks=[pruning.UpdatePruningStep(), record])
    early, late = first[0], _wrapped(pruned)["hidden"].masks()["kernel"]
    assert abs(1 - early.mean() - 0.4) < 0.01 and abs(1 - late.mean() - 0.7) < 0.01
    assert np.all(late[early == 0] == 0)


def test_criteria_choose_different_weights(digits):
    x, y = digits
    base = small_cnn()
    _fit(base, x, y, steps=10, callbacks=[])
    masks = {}
    for criterion in ["magnitude", "random", "taylor"]:
        pruned = pruning.prune(base, pruning.OneShot(0.5, step=5), criterion=criterion)
        _fit(pruned, x, y, steps=6)
        masks[criterion] = _wrapped(pruned)["hidden"].masks()["kernel"]
    assert not np.array_equal(masks["magnitude"], masks["random"])
    assert not np.array_equal(masks["magnitude"], masks["taylor"])


def test_magnitude_keeps_the_largest_weights():
    model = small_cnn()
    pruned = pruning.prune(model, pruning.OneShot(0.5))
    hidden = _wrapped(pruned)["hidden"]
    hidden.prune_to(0.5)
    kernel = model.get_layer("hidden").kernel.numpy()
    kept = hidden.masks()["kernel"] > 0
    assert np.abs(kernel[kept]).min() >= np.abs(kernel[~kept]).max()


def test_random_criterion_is_reproducible(digits):
    x, y = digits
    runs = []
    for _ in range(2):
        pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5), criterion=pruning.Random(seed=7))
        _fit(pruned, x, y, steps=2)
        runs.append(_wrapped(pruned)["hidden"].masks()["kernel"])
    np.testing.assert_array_equal(*runs)


def test_random_masks_equal_across_identically_built_models_with_auto_names():
    """Keras names the second model's layers dense_2, dense_3: the masks must not care."""
    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((16,)), L.Dense(16), L.Dense(16), L.Dense(4)])

    masks = []
    for _ in range(2):
        pruned = pruning.prune(build(), pruning.OneShot(0.5), criterion=pruning.Random(seed=3))
        wrappers = pruning._prune.wrappers(pruned)
        for wrapper in wrappers:
            wrapper.prune_to(0.5)
        masks.append([wrapper.masks()["kernel"] for wrapper in wrappers])
    for first, second in zip(*masks):
        np.testing.assert_array_equal(first, second)
    # Layers of the same shape still get different random masks.
    assert not np.array_equal(masks[0][0], masks[0][1])


@pytest.mark.parametrize("layers", [5, 2.5, {"hidden": True}])
def test_layers_of_the_wrong_type_are_named(layers):
    with pytest.raises(TypeError, match=r"layers must be None, a layer name, a list of layer "
                                        r"names or a predicate"):
        pruning.prune(small_cnn(), pruning.OneShot(0.5), layers=layers)


def test_pruning_a_model_being_pruned_says_what_to_do():
    pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5))
    with pytest.raises(ValueError, match=r"already being pruned \(it has PruneWrapper layers\)"
                                         r".*strip\(model\) first"):
        pruning.prune(pruned, pruning.OneShot(0.8))


def test_strip_of_a_plain_model_says_it_changed_nothing(caplog):
    pruning.strip(small_cnn())
    assert "found no PruneWrapper layers; it returns an unchanged copy" in caplog.text


def test_layers_left_whole_are_reported_at_warning_level(caplog):
    # A Lambda can do anything with the channels it gets, so "gate" must stay whole.
    model = keras.Sequential([keras.Input((8,)), L.Dense(8, name="gate"),
                              L.Lambda(lambda t: t[:, ::-1], name="reverse"),
                              L.Dense(8, activation="relu", name="hidden"), L.Dense(2, name="out")])
    pruning.prune(model, pruning.OneShot(0.5), structure="channels")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "1 layer(s) of" in warnings[0]
    assert "gate: " in warnings[0] and "'reverse'" in warnings[0]
    # The output layer keeps its width by design: that is logged below WARNING.
    assert "out:" not in warnings[0]


def test_taylor_collects_gradients_from_fit(digits):
    x, y = digits
    pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5, step=3), criterion="taylor")
    _fit(pruned, x, y, steps=3)
    entry = next(e for e in _wrapped(pruned)["hidden"]._entries if e.target.path == "kernel")
    statistic = entry.statistic.numpy()
    assert np.count_nonzero(statistic) > 0.9 * statistic.size


def test_custom_callable_criterion(digits):
    x, y = digits
    model = small_cnn()
    # Keep the weights with the smallest magnitude: the opposite of "magnitude".
    pruned = pruning.prune(model, pruning.OneShot(0.5), criterion=lambda w, g: -np.abs(w))
    _fit(pruned, x, y, steps=1)
    kept = _wrapped(pruned)["hidden"].masks()["kernel"] > 0
    original = np.abs(model.get_layer("hidden").kernel.numpy())
    assert kept.sum() == original.size // 2
    assert original[kept].max() <= original[~kept].min()


def test_channels_prune_whole_units_and_followers(digits):
    x, y = digits
    pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5), structure="channels")
    wrapped = _wrapped(pruned)
    assert set(wrapped) == {"conv_a", "bn", "conv_b", "hidden"}  # logits feed the output
    assert wrapped["bn"].follow == "conv_a"
    _fit(pruned, x, y, steps=2)
    for name in ["conv_a", "conv_b", "hidden"]:
        units = wrapped[name].unit_mask()
        assert units.sum() == len(units) // 2
        kernel = wrapped[name].masked_weights()["kernel"]
        dead = np.flatnonzero(units == 0)
        assert np.all(kernel[..., dead] == 0) and np.all(wrapped[name].masked_weights()["bias"][dead] == 0)
    bn = wrapped["bn"].masked_weights()
    dead = np.flatnonzero(wrapped["conv_a"].unit_mask() == 0)
    assert np.all(bn["gamma"][dead] == 0) and np.all(bn["beta"][dead] == 0)
    # A removed channel is exactly zero after the BatchNormalization.
    features = keras.Model(pruned.inputs, pruned.get_layer("prune_bn").output)(x[:16]).numpy()
    assert np.all(features[..., dead] == 0)


def test_channels_prune_the_members_of_a_residual_add_as_one_group():
    inputs = keras.Input((8, 8, 4))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs)
    b = L.Conv2D(4, 3, padding="same", activation="relu", name="b")(a)
    c = L.Conv2D(4, 3, padding="same", activation="relu", name="c")(b)
    merged = L.Add()([a, c])
    outputs = L.Dense(2)(L.Flatten()(merged))
    pruned = pruning.prune(keras.Model(inputs, outputs), pruning.OneShot(0.5), structure="channels")
    wrapped = _wrapped(pruned)
    assert set(wrapped) == {"a", "b", "c"}
    assert wrapped["c"].follow == "a" and wrapped["b"].follow is None  # c drops a's channels


def test_n_of_m_keeps_n_of_every_m_along_the_input_axis(digits):
    x, y = digits
    pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5), structure=(2, 4))
    wrapped = _wrapped(pruned)
    assert "conv_a" not in wrapped  # one input channel: no group of 4
    _fit(pruned, x, y, steps=2)
    conv = wrapped["conv_b"].masks()["kernel"]  # (3, 3, 8, 8): groups along input channels
    assert np.all(conv.reshape(3, 3, 2, 4, 8).sum(axis=3) == 2)
    dense = wrapped["hidden"].masks()["kernel"]
    assert np.all(dense.reshape(-1, 4, 16).sum(axis=1) == 2)


def test_training_without_the_callback_fails_with_instructions(digits):
    x, y = digits
    pruned = compile_model(pruning.prune(small_cnn(), pruning.OneShot(0.5)))
    with pytest.raises(Exception, match="without the tfopt.pruning.UpdatePruningStep callback"):
        pruned.fit(x[:32], y[:32], verbose=0)


def test_callback_without_pruned_layers_is_an_error(digits):
    x, y = digits
    model = compile_model(small_cnn())
    with pytest.raises(ValueError, match="found no pruned layers"):
        model.fit(x[:32], y[:32], verbose=0, callbacks=[pruning.UpdatePruningStep()])


@keras.utils.register_keras_serializable(package="tfopt_tests")
class Scale(L.Layer, tfmot.sparsity.keras.PrunableLayer):
    """A user layer that tells tfmot (and tfopt) which weight to prune."""

    def build(self, input_shape):
        self.scale = self.add_weight("scale", shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.scale

    def get_prunable_weights(self):
        return [self.scale]


def test_user_layers_implementing_prunable_layer_are_pruned(tmp_path):
    model = keras.Sequential([keras.Input((10,)), Scale(name="scale"), L.Dense(2)])
    model.get_layer("scale").scale.assign(np.arange(1.0, 11.0))
    pruned = pruning.prune(model, pruning.OneShot(0.3), layers=["scale"])
    wrapper = _wrapped(pruned)["scale"]
    wrapper.prune_to(0.3)
    np.testing.assert_array_equal(wrapper.masks()["scale"], [0, 0, 0] + [1] * 7)
    x = np.ones((1, 10), "float32")
    expected = model.predict(x * np.array([0, 0, 0] + [1] * 7, "float32"), verbose=0)
    assert max_abs_diff(pruned.predict(x, verbose=0), expected) < 1e-6
    pruned.save(str(tmp_path / "m.keras"))
    assert max_abs_diff(keras.models.load_model(str(tmp_path / "m.keras")).predict(x, verbose=0),
                        expected) < 1e-6


def test_keras_masks_flow_through_wrappers():
    """Embedding(mask_zero=True) -> LSTM: padded steps stay skipped once wrapped."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), L.Embedding(20, 8, mask_zero=True),
                              L.LSTM(8), L.Dense(3)])
    tokens, _ = _sequence_data(16)
    tokens[:, 3:] = 0  # padding
    pruned = pruning.prune(model, pruning.OneShot(0.5))
    assert len(_wrapped(pruned)) == 3
    assert max_abs_diff(pruned.predict(tokens, verbose=0), model.predict(tokens, verbose=0)) < 1e-5
    unmasked = keras.Sequential([keras.Input((6,)), L.Embedding(20, 8), L.LSTM(8), L.Dense(3)])
    unmasked.set_weights(model.get_weights())
    assert max_abs_diff(unmasked.predict(tokens, verbose=0), model.predict(tokens, verbose=0)) > 1e-3
