"""PruneWrapper: the Keras layer that masks another layer's weights while it trains."""

import inspect
import weakref

import tensorflow as tf
import tf_keras as keras
from absl import logging

from tfopt.core import mask_updates
from tfopt.core import masks as _masks
from tfopt.pruning import _criteria
from tfopt.pruning import _registry
from tfopt.pruning import _schedules

_NO_CALLBACK = (
    "A tfopt-pruned model is training without the tfopt.pruning.UpdatePruningStep "
    "callback, so its masks would never update. Pass "
    "callbacks=[tfopt.pruning.UpdatePruningStep()] to fit()."
)


def _plain(error):
    """`error`, marked so AutoGraph and Keras re-raise it without kilobytes of context.

    Raised while Keras traces the training step, an error would otherwise come
    wrapped in generated-code frames and the call arguments of every layer,
    with the one sentence that matters at the end.
    """
    error.ag_pass_through = True
    error._keras_call_info_injected = True
    return error


def pruning_targets(layer, structure, follower=False):
    """The Targets a wrapper masks for `layer` under `structure` (empty: nothing to prune)."""
    spec = _registry.follower_spec(layer) if follower else _registry.spec_for(layer)
    if spec is None:
        return ()
    if follower:
        return spec.unit_weights
    if structure == _masks.UNSTRUCTURED:
        return spec.pruned
    if structure == _masks.CHANNELS:
        scored = tuple(t for t in spec.pruned if t.unit_axis is not None)
        return scored + spec.unit_weights if scored else ()
    _, m = structure
    targets = []
    for target in spec.pruned:
        owner, attr = _registry.resolve(layer, target.path)
        variable = getattr(owner, attr, None)
        if (target.input_axis is not None and variable is not None
                and _masks.supports_n_of_m(variable.shape, m, target.input_axis)):
            targets.append(target)
    return tuple(targets)


class _Entry:
    """One masked weight: where it lives, its mask and gradient statistics."""

    def __init__(self, target, owner, attr, mask, statistic, scored):
        self.target, self.owner, self.attr = target, owner, attr
        self.variable = getattr(owner, attr)
        self.mask, self.statistic, self.scored = mask, statistic, scored


@keras.utils.register_keras_serializable(package="tfopt")
class PruneWrapper(keras.layers.Wrapper):
    """Trains a layer with masked weights and prunes it on a schedule.

    The layer computes with ``weight * mask``, so pruned weights get no gradient
    and stay exactly zero. Masks change only at the steps the schedule names,
    when `tfopt.pruning.UpdatePruningStep` asks; the layer itself is not changed
    until `strip` or `shrink`. Use `tfopt.pruning.prune` rather than wrapping by
    hand: it picks the layers and wires channel pruning through the model.

    Args:
      layer: the Keras layer to prune.
      schedule: a tfopt or tfmot pruning schedule (not needed with `follow`).
      criterion: "magnitude", "l2", "random", "taylor", a `Criterion` or a
        function (weights, gradients) -> scores. Defaults to "magnitude".
      structure: "unstructured", "channels" or an (n, m) pair. Defaults to
        "unstructured".
      follow: name of a channel-pruned layer whose unit mask this layer's
        per-channel weights copy (BatchNormalization, depthwise convolution).
        Defaults to None.
      score_key: names this layer to seeded criteria (`Random`), so that the
        same seed gives the same scores. `prune` sets it to the layer's
        position in the model, which identically built models share (their
        auto-generated layer names differ). Defaults to None (the layer name).
      **kwargs: Keras layer arguments such as `name`.

    Example:
      >>> dense = keras.layers.Dense(4)
      >>> wrapped = PruneWrapper(dense, ConstantSparsity(0.5))
    """

    # Bookkeeping of traced graphs, not state: tf.Module's traversal skips it.
    _TF_MODULE_IGNORED_PROPERTIES = frozenset(
        keras.layers.Wrapper._TF_MODULE_IGNORED_PROPERTIES | {"_counted_in"})

    def __init__(self, layer, schedule=None, criterion="magnitude",
                 structure="unstructured", follow=None, score_key=None, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"PruneWrapper wraps a tf_keras layer, got {layer!r} "
                            f"({type(layer).__name__}). Pass a layer such as "
                            "keras.layers.Dense(8), or prune a whole model with "
                            "tfopt.pruning.prune(model, schedule).")
        kwargs.setdefault("name", f"prune_{layer.name}")
        super().__init__(layer, **kwargs)
        self.structure = _masks.parse_structure(structure)
        self.follow = follow
        if isinstance(schedule, dict):
            schedule = _schedules.deserialize(schedule)
        if follow is None:
            self.schedule = _schedules.get(schedule)
        else:
            self.schedule = None
            if self.structure != _masks.CHANNELS:
                raise ValueError(f"follow={follow!r} needs structure='channels', got "
                                 f"{_masks.structure_name(self.structure)!r}.")
        self.criterion = _criteria.get(criterion)
        if score_key is not None and not isinstance(score_key, str):
            raise TypeError(f"score_key must be a string or None, got {score_key!r}.")
        self.score_key = score_key
        self._validate_layer()
        self._entries = []
        # Set by UpdatePruningStep: training without it fails when Keras traces the step.
        self.callback_attached = False
        # Graph -> replica contexts whose training step this layer has counted.
        self._counted_in = weakref.WeakKeyDictionary()
        self._warned_n_of_m = False
        self.supports_masking = layer.supports_masking

    def _validate_layer(self):
        if isinstance(self.layer, keras.Model):
            raise ValueError(
                f"PruneWrapper wraps single layers; {self.layer.name!r} is a "
                f"{type(self.layer).__name__}. Use tfopt.pruning.prune(model, ...)."
            )
        supported = (_registry.can_follow(self.layer) if self.follow
                     else _registry.is_supported(self.layer))
        if not supported:
            raise ValueError(
                f"Layer {self.layer.name!r} of type {type(self.layer).__name__} cannot be "
                f"pruned. Supported: {_registry.SUPPORTED}."
            )

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True  # as Keras' own _maybe_build does, for user layers
        targets = pruning_targets(self.layer, self.structure, follower=self.follow is not None)
        if not targets:
            raise ValueError(
                f"Layer {self.layer.name!r} ({type(self.layer).__name__}) has no weights "
                f"that structure {_masks.structure_name(self.structure)!r} can prune. "
                + ("Channel pruning needs output units (Dense, Conv, Embedding)."
                   if self.structure == _masks.CHANNELS else
                   "N:M needs an input axis divisible by M (Dense, Conv, RNN kernels).")
            )
        scored_paths = {t.path for t in pruning_targets(self.layer, self.structure)} \
            if self.follow is None else set()
        unit_paths = {t.path for t in (_registry.spec_for(self.layer) or
                                      _registry.LayerSpec(())).unit_weights}
        for target in targets:
            owner, attr = _registry.resolve(self.layer, target.path)
            variable = getattr(owner, attr)
            scored = target.path in scored_paths and not (
                self.structure == _masks.CHANNELS and target.path in unit_paths)
            safe = target.path.replace(".", "_")
            mask = self.add_weight(
                name=f"{safe}_mask", shape=variable.shape, dtype=variable.dtype,
                initializer="ones", trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            statistic = None
            if scored and self.criterion.needs_gradients:
                statistic = self.add_weight(
                    name=f"{safe}_gradient_statistic", shape=variable.shape,
                    dtype=variable.dtype, initializer="zeros", trainable=False,
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN)
            self._entries.append(_Entry(target, owner, attr, mask, statistic, scored))
        self.pruning_step = None
        if self.follow is None:
            self.pruning_step = self.add_weight(
                name="pruning_step", shape=(), dtype=tf.int64, trainable=False,
                initializer=keras.initializers.Constant(-1),
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        parameters = inspect.signature(self.layer.call).parameters
        self._passes_training = "training" in parameters
        self._passes_mask = "mask" in parameters
        super().build(input_shape)

    # Forward pass -----------------------------------------------------------

    def call(self, inputs, *args, training=None, mask=None, **kwargs):
        # *args / **kwargs: the other inputs of layers called on several
        # (MultiHeadAttention's value and key), passed through unchanged.
        if training is None:
            training = keras.backend.learning_phase()
        if self.pruning_step is not None and self._counts_this_call():
            if isinstance(training, (bool, int)):
                if training:
                    if not self.callback_attached:
                        raise _plain(ValueError(_NO_CALLBACK))
                    self._count_step()
            else:
                tf.cond(tf.cast(training, tf.bool), self._count_step, lambda: tf.constant(True))
        saved = []
        for entry in self._entries:
            value = tf.convert_to_tensor(entry.variable)
            if entry.statistic is not None:
                value = self._observe(entry, value)
            saved.append((entry.owner, entry.attr, getattr(entry.owner, entry.attr)))
            # Bypass Keras attribute tracking: the masked tensor is temporary.
            object.__setattr__(entry.owner, entry.attr, value * tf.cast(entry.mask, value.dtype))
        try:
            if self._passes_training:
                kwargs["training"] = training
            if self._passes_mask and mask is not None:
                kwargs["mask"] = mask
            return self.layer.call(inputs, *args, **kwargs)
        finally:
            for owner, attr, original in saved:
                object.__setattr__(owner, attr, original)

    def _counts_this_call(self):
        """False for the second call of a shared layer within one traced training step.

        A layer called on two inputs runs twice per step; counting both would
        advance its schedule twice as fast. Under a distribution strategy every
        replica traces its own call into the same graph, and each must count
        (the step variable takes the first replica's value). Eager calls always
        count.
        """
        if tf.executing_eagerly():
            return True
        replicas = self._counted_in.setdefault(tf.compat.v1.get_default_graph(), [])
        replica = tf.distribute.get_replica_context()
        if any(seen is replica for seen in replicas):
            return False
        replicas.append(replica)
        return True

    def _count_step(self):
        """Checks that UpdatePruningStep set the step, then counts this training step."""
        check = tf.debugging.assert_greater_equal(
            self.pruning_step, tf.constant(0, tf.int64), message=_NO_CALLBACK)
        with tf.control_dependencies([check] if check is not None else []):
            self.pruning_step.assign_add(1)
        return tf.constant(True)

    def _observe(self, entry, value):
        """Identity whose gradient also updates the entry's moving statistic."""
        criterion, statistic = self.criterion, entry.statistic

        @tf.custom_gradient
        def observed(weight):
            def gradient(upstream):
                step = tf.cast(criterion.observe(weight, upstream), statistic.dtype)
                update = statistic.assign(
                    criterion.decay * statistic + (1.0 - criterion.decay) * step)
                with tf.control_dependencies([update]):
                    return tf.identity(upstream)
            return tf.identity(weight), gradient

        return observed(value)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    # Mask updates (eager, from UpdatePruningStep) ----------------------------

    def update_masks(self, step, steps=1):
        """Prunes for the schedule's steps in [step, step + steps); returns the unit mask.

        Keras runs `steps_per_execution` training steps in one call and masks
        change between calls, so the last pruning step of the coming call
        decides the masks (the same masks as pruning at each of its steps in
        turn, since masks only grow sparser).

        Returns:
          The new unit mask under "channels", else None.
        """
        sparsity = _schedules.latest_update(self.schedule, step, steps)
        if sparsity is None:
            return None
        return self.prune_to(sparsity)

    def prune_to(self, sparsity):
        """Updates the masks to `sparsity` now; returns the unit mask under "channels"."""
        weights = self._masked_weights()
        warning = mask_updates.n_of_m_mismatch(self.structure, sparsity)
        if warning is not None and not self._warned_n_of_m:
            logging.warning("Layer %s: %s", self.layer.name, warning)
            self._warned_n_of_m = True
        key = self.layer.name if self.score_key is None else self.score_key
        new, unit_mask = mask_updates.prune_to(weights, self.criterion, self.structure,
                                               sparsity, key)
        for index, mask in new.items():
            self._assign(self._entries[index], mask, weights[index].weight)
        return unit_mask

    def apply_unit_mask(self, unit_mask):
        """Masks per-channel weights of a follower with its producer's unit mask."""
        weights = self._masked_weights()
        for index, mask in mask_updates.follower_masks(weights, unit_mask).items():
            self._assign(self._entries[index], mask, weights[index].weight)

    def _masked_weights(self, values=True):
        """The entries as core `MaskedWeight`s (without weight values if not `values`)."""
        return [mask_updates.MaskedWeight(
            path=e.target.path, weight=e.variable.numpy() if values else None,
            mask=e.mask.numpy(),
            statistic=None if e.statistic is None or not values else e.statistic.numpy(),
            scored=e.scored, unit_axis=e.target.unit_axis, input_axis=e.target.input_axis)
            for e in self._entries]

    @staticmethod
    def _assign(entry, mask, weight):
        dtype = entry.variable.dtype.as_numpy_dtype
        entry.mask.assign(mask.astype(dtype))
        # Zero the stored weights too, so the variable itself is sparse.
        entry.variable.assign((weight * mask).astype(dtype))

    # Inspection ---------------------------------------------------------------

    def unit_mask(self):
        """1-D mask over output units (channels structure), from the current masks."""
        return mask_updates.unit_mask(self._masked_weights(values=False))

    def masked_weights(self):
        """{attribute path: weight * mask} as numpy arrays."""
        return {e.target.path: e.variable.numpy() * e.mask.numpy() for e in self._entries}

    def stripped_weights(self):
        """The inner layer's weights in `layer.weights` order, masks applied."""
        masked = {id(e.variable): e.variable.numpy() * e.mask.numpy() for e in self._entries}
        return [masked.get(id(v), v.numpy()) for v in self.layer.weights]

    def sparsity(self):
        """Fraction of zeros across the scored weights (the weights the schedule targets)."""
        return mask_updates.sparsity(self._masked_weights(values=False))

    def masks(self):
        """{attribute path: mask} as numpy arrays."""
        return {e.target.path: e.mask.numpy() for e in self._entries}

    def get_config(self):
        config = super().get_config()
        config.update(
            schedule=None if self.schedule is None else _schedules.serialize(self.schedule),
            criterion=keras.saving.serialize_keras_object(self.criterion),
            structure=(list(self.structure) if isinstance(self.structure, tuple)
                       else self.structure),
            follow=self.follow,
            score_key=self.score_key,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.layers.deserialize(config.pop("layer"), custom_objects=custom_objects)
        return cls(layer, **config)
