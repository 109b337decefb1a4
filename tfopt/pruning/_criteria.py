"""The pruning criteria of `tfopt.core.criteria`, registered with tf-keras.

Magnitude, L2, Random and Taylor are the core classes themselves; `Custom`
adds tf-keras serialization of its function.
"""

import tf_keras as keras

from tfopt.core import criteria

Criterion = criteria.Criterion
Magnitude = criteria.Magnitude
L2 = criteria.L2
Random = criteria.Random
Taylor = criteria.Taylor


class Custom(criteria.Custom):
    __doc__ = criteria.Custom.__doc__

    @staticmethod
    def _serialize_fn(fn):
        return keras.saving.serialize_keras_object(fn)

    @staticmethod
    def _deserialize_fn(config):
        return keras.saving.deserialize_keras_object(config)


for _cls in (Magnitude, L2, Random, Taylor, Custom):
    keras.utils.register_keras_serializable(package="tfopt")(_cls)


def get(identifier):
    """Resolves a criterion from a name, an instance, a callable or a Keras config.

    Example:
      >>> get("taylor")
      Taylor(decay=0.95)
    """
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    return criteria.get(identifier, custom=Custom)
