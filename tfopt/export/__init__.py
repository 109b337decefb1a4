"""Export: Keras models to what runtimes load, checked against the model.

TFLite files for LiteRT on devices; versioned SavedModels for TensorFlow
Serving, with the configuration files its server reads and a deployment kit
(docker compose, Kubernetes, KServe) for the official image.

Example:
  >>> from tfopt import export
  >>> export.tflite(model, "model.tflite", mode="int8", representative_data=x_train[:300])
  >>> export.verify_tflite("model.tflite", x_test, y_test, reference=model)
  >>> export.inspect_tflite("model.tflite")["fully_int8"]
  >>> version_dir = export.saved_model(model, "models/digits", warmup_inputs=x_test[:32])
  >>> export.model_server_config([export.ServedModel("digits")], "models/models.config")
"""

from tfopt import _keras2  # noqa: F401  (first: tfmot must not rebind tf.keras)
from tfopt.export._inspect import inspect_tflite
from tfopt.export._kit import serving_kit
from tfopt.export._model_server_config import ServedModel
from tfopt.export._model_server_config import model_server_config
from tfopt.export._model_server_config import read_model_server_config
from tfopt.export._model_server_config import update_model_server_config
from tfopt.export._saved_model import saved_model
from tfopt.export._saved_model_bundle import SavedModelBundle
from tfopt.export._server_flags_config import batching_config
from tfopt.export._server_flags_config import monitoring_config
from tfopt.export._server_flags_config import read_batching_config
from tfopt.export._server_flags_config import read_monitoring_config
from tfopt.export._tflite import TFLITE_MODES
from tfopt.export._tflite import tflite
from tfopt.export._verify import verify_tflite
from tfopt.export._verify_saved_model import verify_saved_model
