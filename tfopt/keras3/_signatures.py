"""Keras 3 layer mixins that keep their base layer's `build` and `call` signatures.

Keras 3 reads a layer's `build` and `call` signatures: it passes `build` the
input shapes named after `call`'s tensor arguments, and passes `training` only
to a `call` that declares it. A mixin that overrides both with ``*args,
**kwargs`` would break every layer it is mixed into, and a mixin needs
`training` even where the base layer ignores it (a convolution). So each
subclass gets `build` and `call` with its base class's signatures (`call` with
``training`` added), forwarding to the mixin's `_build` and `_call`.
"""

import functools
import inspect


def adopt(cls, base):
    """Gives `cls` `build`/`call` with `base`'s signatures, calling `cls._build`/`cls._call`.

    `cls._call(self, base_call, args, kwargs, training)` receives the base's
    `call` bound to the layer and the arguments to pass it (without `training`
    unless the base takes it).
    """
    call_signature = inspect.signature(base.call)
    passes_training = "training" in call_signature.parameters

    # Through __wrapped__, not __signature__: Keras wraps each layer's bound `build`
    # with functools.wraps, which would copy a __signature__ that still names `self`.
    @functools.wraps(base.build)
    def build(self, *args, **kwargs):
        self._build(*args, **kwargs)

    # functools.wraps copies Keras' mark on a weightless base's default `build`, with
    # which Keras would never call it; the mixin's own state must be built.
    build._is_default = False

    def call(self, *args, training=None, **kwargs):
        if passes_training:
            kwargs["training"] = training
        return self._call(base.call.__get__(self), args, kwargs, training)

    call.__signature__ = _with_training(call_signature)
    call.__doc__ = base.call.__doc__
    cls.build, cls.call = build, call


def _with_training(signature):
    if "training" in signature.parameters:
        return signature
    parameters = list(signature.parameters.values())
    training = inspect.Parameter("training", inspect.Parameter.KEYWORD_ONLY, default=None)
    at = next((i for i, p in enumerate(parameters) if p.kind is p.VAR_KEYWORD), len(parameters))
    return signature.replace(parameters=parameters[:at] + [training] + parameters[at:])
