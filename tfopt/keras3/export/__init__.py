"""Export for Keras 3 models: TFLite files for LiteRT, SavedModels for TF Serving.

These are the same functions as `tfopt.export`'s, which take tf_keras and
Keras 3 models alike; this module names them on the Keras 3 path. A Keras 3
model whose graph holds FakeQuant ops (trained quantization-aware, e.g.
through ``keras.quantizers.fake_quant_with_min_max_vars``) converts to a
fully-int8 file of builtin ops with mode="int8" and no representative data.
Serving configuration files and the deployment kit do not depend on the
Keras: use them from `tfopt.export`.

Example:
  >>> from tfopt.keras3 import export
  >>> export.tflite(model, "model.tflite", mode="int8", representative_data=x_train[:300])
  >>> export.verify_tflite("model.tflite", x_test, y_test, reference=model)
  >>> export.inspect_tflite("model.tflite")["fully_int8"]
  >>> version_dir = export.saved_model(model, "models/digits", warmup_inputs=x_test[:32])
"""

from tfopt.export import TFLITE_MODES
from tfopt.export import SavedModelBundle
from tfopt.export import inspect_tflite
from tfopt.export import saved_model
from tfopt.export import tflite
from tfopt.export import verify_saved_model
from tfopt.export import verify_tflite

__all__ = ["TFLITE_MODES", "SavedModelBundle", "inspect_tflite", "saved_model", "tflite",
           "verify_saved_model", "verify_tflite"]
