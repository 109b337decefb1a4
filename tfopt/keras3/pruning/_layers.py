"""Keras 3 layers that train with masked weights and prune on a schedule.

`PruningMixin` adds pruning to a Keras 3 layer class: one mask per pruned
weight (and, for gradient criteria, a moving statistic of the gradients), a
training-step counter, and a forward pass that computes with ``weight * mask``.
`PrunedDense`, `PrunedConv2D`, ... are the built-in layers with the mixin, so a
pruned model keeps its layer types (a `PrunedDense` is a `keras.layers.Dense`),
and `strip` turns each back into its base class.

During `call` each pruned weight's attribute is replaced by its masked value and
restored afterwards. Keras 3's Dense, EinsumDense, convolutions and Embedding
read their weight through a property over ``_kernel`` / ``_embeddings`` (the hook
Keras' LoRA uses); depthwise, separable and recurrent layers and attention read
their weight attributes directly: replacing the attribute covers both, and the
sublayers of MultiHeadAttention and Bidirectional too, with one mechanism.

Which weights each layer type prunes is `tfopt.core.layer_specs`; the pruning
arithmetic (scores, masks, channel units) is `tfopt.core.mask_updates`, shared
with the tf-keras `PruneWrapper`.
"""

import keras
import numpy as np
from absl import logging
from keras import ops

from tfopt.core import criteria as core_criteria
from tfopt.core import layer_specs
from tfopt.core import mask_updates
from tfopt.core import masks as core_masks
from tfopt.keras3 import _graph
from tfopt.keras3 import _signatures
from tfopt.keras3._weights import resolve
from tfopt.keras3.pruning import _objects

_NO_CALLBACK = (
    "A pruned layer is training without tfopt.keras3.pruning.UpdatePruningStep, so its "
    "masks would never change. Pass callbacks=[tfopt.keras3.pruning.UpdatePruningStep()] "
    "to fit.")


def spec_of(layer, structure, follower=False):
    """The `LayerSpec` of a Keras 3 layer under `structure` (None: nothing to prune).

    A follower masks per-channel weights (BatchNormalization, depthwise) or,
    for a layer whose units meet its leader's at a merge, its own units.
    """
    if follower:
        spec = _graph.per_channel_spec(layer)
        if spec is None:
            own = _graph.spec_for(layer)
            spec = layer_specs.member_spec(own) if own is not None and own.channel_capable \
                else None
        return spec
    spec = _graph.spec_for(layer)
    if spec is None or structure != core_masks.CHANNELS:
        return spec
    scored = tuple(t for t in spec.pruned if t.unit_axis is not None)
    return layer_specs.LayerSpec(scored, spec.unit_weights) if scored else None


class _Entry:
    """One masked weight: where it lives, its mask and its gradient statistic."""

    def __init__(self, target, owner, attr, mask, statistic, scored):
        self.target, self.owner, self.attr = target, owner, attr
        self.mask, self.statistic, self.scored = mask, statistic, scored

    @property
    def variable(self):
        return getattr(self.owner, self.attr)


def base_class(cls):
    """The Keras layer class a Pruned* class adds pruning to (PrunedDense -> Dense)."""
    mro = cls.__mro__
    return mro[mro.index(PruningMixin) + 1]


class PruningMixin:
    """Pruning for a Keras 3 layer class: masked weights, masks updated on a schedule.

    Mixed into `PrunedDense`, `PrunedConv2D`, ...; use
    `tfopt.keras3.pruning.prune` rather than building them by hand: it picks
    the layers and wires channel pruning through the model.

    Args:
      schedule: a `tfopt.keras3.pruning` schedule (not needed with `follow`).
      criterion: "magnitude", "l2", "random", "taylor", a criterion object or a
        function (weights, gradients) -> scores. Defaults to "magnitude".
      structure: "unstructured", "channels" or an (n, m) pair. Defaults to
        "unstructured".
      follow: name of a channel-pruned layer whose unit mask this layer's
        per-channel weights copy (BatchNormalization, depthwise convolution,
        or a layer whose units meet the leader's at a residual merge).
        Defaults to None.
      score_key: names this layer to seeded criteria (`Random`). Defaults to
        None (the layer name).
      **kwargs: the base layer's arguments.
    """

    def __init__(self, *args, schedule=None, criterion="magnitude", structure="unstructured",
                 follow=None, score_key=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.structure = core_masks.parse_structure(structure)
        self.follow = follow
        if follow is None:
            self.schedule = _objects.schedule(schedule)
        else:
            self.schedule = None
            if self.structure != core_masks.CHANNELS:
                raise ValueError(f"follow={follow!r} needs structure='channels', got "
                                 f"{core_masks.structure_name(self.structure)!r}.")
        self.criterion = _objects.criterion(criterion)
        if score_key is not None and not isinstance(score_key, str):
            raise TypeError(f"score_key must be a string or None, got {score_key!r}.")
        self.score_key = score_key
        self._entries = []
        self._warned_n_of_m = False
        # Set by UpdatePruningStep: training without it raises.
        self.callback_attached = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _signatures.adopt(cls, base_class(cls))

    def _build(self, *args, **kwargs):
        base_class(type(self)).build(self, *args, **kwargs)
        follower = self.follow is not None
        targets = pruning_targets(self, self.structure, follower=follower)
        if not targets:
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) has no weights that structure "
                f"{core_masks.structure_name(self.structure)!r} can prune. "
                + ("Channel pruning needs output units (Dense, Conv, Embedding)."
                   if self.structure == core_masks.CHANNELS else
                   "N:M needs an input axis divisible by M (Dense, Conv, RNN kernels)."))
        scored_paths = set() if follower else {
            t.path for t in spec_of(self, self.structure).pruned}
        for target in targets:
            owner, attr = resolve(self, target.path)
            variable = getattr(owner, attr)
            safe = target.path.replace(".", "_").lstrip("_")
            mask = self.add_weight(name=f"{safe}_mask", shape=variable.shape, dtype=variable.dtype,
                                   initializer="ones", trainable=False)
            scored = target.path in scored_paths
            statistic = None
            if scored and self.criterion.needs_gradients:
                # The optimizer writes this variable's "gradient" into it: the gradient of
                # the masked weight is turned into the statistic's next value (see _observe).
                statistic = self.add_weight(
                    name=f"{safe}_gradient_statistic", shape=variable.shape,
                    dtype=variable.dtype, initializer="zeros", trainable=True,
                    overwrite_with_gradient=True)
            self._entries.append(_Entry(target, owner, attr, mask, statistic, scored))
        self.pruning_step = None
        if not follower:
            self.pruning_step = self.add_weight(
                name="pruning_step", shape=(), dtype="int32", trainable=False,
                initializer=keras.initializers.Constant(-1))

    def _call(self, base_call, args, kwargs, training):
        if training and self.pruning_step is not None:
            if not self.callback_attached:
                raise ValueError(_NO_CALLBACK)
            self.pruning_step.assign(self.pruning_step + 1)
        saved = []
        for entry in self._entries:
            variable = entry.variable
            value = ops.convert_to_tensor(variable)
            if entry.statistic is not None and training:
                value = _observe(self.criterion, value, entry.statistic)
            saved.append((entry.owner, entry.attr, variable))
            # Bypasses Keras' attribute tracking: the masked tensor lives for this call only.
            object.__setattr__(entry.owner, entry.attr, value * ops.cast(entry.mask, value.dtype))
        try:
            return base_call(*args, **kwargs)
        finally:
            for owner, attr, variable in saved:
                object.__setattr__(owner, attr, variable)

    # Mask updates (eager, from UpdatePruningStep) ----------------------------

    def update_masks(self, step, steps=1):
        """Prunes for the schedule's steps in [step, step + steps); returns the unit mask."""
        sparsity = _objects.latest_update(self.schedule, step, steps)
        if sparsity is None:
            return None
        return self.prune_to(sparsity)

    def prune_to(self, sparsity):
        """Updates the masks to `sparsity` now; returns the unit mask under "channels"."""
        warning = mask_updates.n_of_m_mismatch(self.structure, sparsity)
        if warning and not self._warned_n_of_m:
            logging.warning("Layer %s: %s", self.name, warning)
            self._warned_n_of_m = True
        weights = self._masked_weights()
        key = self.name if self.score_key is None else self.score_key
        new, unit = mask_updates.prune_to(weights, self.criterion, self.structure, sparsity, key)
        for index, mask in new.items():
            self._assign(self._entries[index], mask, weights[index].weight)
        return unit

    def apply_unit_mask(self, unit_mask):
        """Masks a follower's per-channel weights with its leader's unit mask."""
        weights = self._masked_weights()
        for index, mask in mask_updates.follower_masks(weights, unit_mask).items():
            self._assign(self._entries[index], mask, weights[index].weight)

    def _masked_weights(self):
        return [mask_updates.MaskedWeight(
            path=e.target.path, weight=ops.convert_to_numpy(e.variable),
            mask=ops.convert_to_numpy(e.mask),
            statistic=None if e.statistic is None else ops.convert_to_numpy(e.statistic),
            scored=e.scored, unit_axis=e.target.unit_axis, input_axis=e.target.input_axis)
            for e in self._entries]

    @staticmethod
    def _assign(entry, mask, weight):
        dtype = ops.convert_to_numpy(entry.mask).dtype
        entry.mask.assign(mask.astype(dtype))
        # Zero the stored weights too, so the variable itself is sparse.
        entry.variable.assign((weight * mask).astype(dtype))

    # Inspection ---------------------------------------------------------------

    def unit_mask(self):
        """1-D mask over output units (channels structure), from the current masks."""
        return mask_updates.unit_mask(self._masked_weights())

    def masks(self):
        """{attribute path: mask} as numpy arrays."""
        return {e.target.path: ops.convert_to_numpy(e.mask) for e in self._entries}

    def masked_weights(self):
        """{attribute path: weight * mask} as numpy arrays."""
        return {w.path: w.weight * w.mask for w in self._masked_weights()}

    def sparsity(self):
        """Fraction of zeros across the scored weights (the weights the schedule targets)."""
        return mask_updates.sparsity(self._masked_weights())

    def base_variables(self):
        """The base layer's variables (no masks, statistics or step), in its `weights` order."""
        extra = {id(v) for e in self._entries for v in (e.mask, e.statistic) if v is not None}
        if self.pruning_step is not None:
            extra.add(id(self.pruning_step))
        return [v for v in self.weights if id(v) not in extra]

    def set_base_weights(self, weights):
        """Sets the base layer's weights (as `base_variables` orders them), masks unchanged."""
        variables = self.base_variables()
        if len(weights) != len(variables):
            raise ValueError(f"{self.name!r} has {len(variables)} weights besides its masks, got "
                             f"{len(weights)}.")
        for variable, value in zip(variables, weights):
            variable.assign(value)

    def stripped_weights(self):
        """The base layer's weights, masks applied, in the base layer's `weights` order."""
        masked = {id(e.variable): ops.convert_to_numpy(e.variable) * ops.convert_to_numpy(e.mask)
                  for e in self._entries}
        return [masked.get(id(v), ops.convert_to_numpy(v)) for v in self.base_variables()]

    # Saving ---------------------------------------------------------------------

    def save_own_variables(self, store):
        # Dense and the convolutions save their `kernel` property and bias only; the
        # masks, statistics and step must be saved too, by position.
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(),
                "schedule": _objects.serialize(self.schedule),
                "criterion": _objects.serialize(self.criterion),
                "structure": (list(self.structure) if isinstance(self.structure, tuple)
                              else self.structure),
                "follow": self.follow,
                "score_key": self.score_key}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name, read in (("schedule", _objects.schedule), ("criterion", _objects.criterion)):
            if isinstance(config.get(name), dict):
                config[name] = read(config[name])
        return super().from_config(config)


def pruning_targets(layer, structure, follower=False):
    """The Targets a pruned twin of `layer` masks under `structure` (empty: nothing to prune).

    `layer` must be built: N:M keeps only weights whose input axis divides by M.
    """
    spec = spec_of(layer, structure, follower=follower)
    if spec is None:
        return ()
    if follower:
        return spec.unit_weights
    if structure == core_masks.CHANNELS:
        return spec.pruned + spec.unit_weights
    if structure == core_masks.UNSTRUCTURED:
        return spec.pruned
    _, m = structure
    kept = []
    for target in spec.pruned:
        owner, attr = resolve(layer, target.path)
        if target.input_axis is not None and core_masks.supports_n_of_m(
                getattr(owner, attr).shape, m, target.input_axis):
            kept.append(target)
    return tuple(kept)


def _observe(criterion, weight, statistic):
    """Identity on `weight` whose gradient for `statistic` is the statistic's next value."""
    decay = criterion.decay

    @ops.custom_gradient
    def observed(w, s):
        def gradient(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            step = ops.cast(criterion.observe(w, upstream), s.dtype)
            return upstream, decay * s + (1.0 - decay) * step
        return w, gradient

    return observed(weight, statistic)


def _register(cls):
    return keras.saving.register_keras_serializable(package="tfopt")(cls)


_L = keras.layers


@_register
class PrunedDense(PruningMixin, _L.Dense):
    """`keras.layers.Dense` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedEinsumDense(PruningMixin, _L.EinsumDense):
    """`keras.layers.EinsumDense` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedConv1D(PruningMixin, _L.Conv1D):
    """`keras.layers.Conv1D` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedConv2D(PruningMixin, _L.Conv2D):
    """`keras.layers.Conv2D` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedConv3D(PruningMixin, _L.Conv3D):
    """`keras.layers.Conv3D` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedDepthwiseConv1D(PruningMixin, _L.DepthwiseConv1D):
    """`keras.layers.DepthwiseConv1D` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedDepthwiseConv2D(PruningMixin, _L.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedSeparableConv1D(PruningMixin, _L.SeparableConv1D):
    """`keras.layers.SeparableConv1D` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedSeparableConv2D(PruningMixin, _L.SeparableConv2D):
    """`keras.layers.SeparableConv2D` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedEmbedding(PruningMixin, _L.Embedding):
    """`keras.layers.Embedding` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedLSTM(PruningMixin, _L.LSTM):
    """`keras.layers.LSTM` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedGRU(PruningMixin, _L.GRU):
    """`keras.layers.GRU` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedSimpleRNN(PruningMixin, _L.SimpleRNN):
    """`keras.layers.SimpleRNN` pruned on a schedule (see `PruningMixin`)."""


@_register
class PrunedBidirectional(PruningMixin, _L.Bidirectional):
    """`keras.layers.Bidirectional` (of LSTM, GRU or SimpleRNN) pruned on a schedule."""


@_register
class PrunedMultiHeadAttention(PruningMixin, _L.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with its four projections pruned on a schedule."""


@_register
class PrunedBatchNormalization(PruningMixin, _L.BatchNormalization):
    """`keras.layers.BatchNormalization` following a channel-pruned layer's unit mask."""


# Built-in layer class name -> its Pruned* twin.
PRUNED_CLASSES = {base_class(cls).__name__: cls for cls in (
    PrunedDense, PrunedEinsumDense, PrunedConv1D, PrunedConv2D, PrunedConv3D,
    PrunedDepthwiseConv1D, PrunedDepthwiseConv2D, PrunedSeparableConv1D, PrunedSeparableConv2D,
    PrunedEmbedding, PrunedLSTM, PrunedGRU, PrunedSimpleRNN, PrunedBidirectional,
    PrunedMultiHeadAttention, PrunedBatchNormalization)}
