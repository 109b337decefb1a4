"""Loading one version directory into a Servable, with TF Serving's load errors."""

import os

import grpc
import tensorflow as tf

from tfopt.export import SavedModelBundle
from tfopt.serving._errors import ServingError, from_op_error
from tfopt.serving._servable import Servable


def load(name, version, path, session_config=None):
    """Loads `path` (a version directory) as version `version` of model `name`.

    Raises:
      ServingError: NOT_FOUND when the directory holds no SavedModel, else
        the status TensorFlow's loader failed with.
    """
    if not tf.saved_model.contains_saved_model(path):
        # TensorFlow's loader (tensorflow/cc/saved_model/reader.cc) says this.
        raise ServingError(grpc.StatusCode.NOT_FOUND, "Could not find SavedModel .pb or "
                           f".pbtxt at supplied export directory path: {os.fspath(path)}")
    try:
        bundle = SavedModelBundle(path, session_config=session_config)
    except tf.errors.OpError as error:
        raise from_op_error(error) from None
    except (ValueError, RuntimeError, OSError) as error:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Failed to load SavedModel at {path}: {error}") from None
    return Servable(name, version, bundle)
