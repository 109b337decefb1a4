"""Export: Keras models to files that runtimes load, checked against the model.

Example:
  >>> from tfopt import export
  >>> export.tflite(model, "model.tflite", mode="int8", representative_data=x_train[:300])
  >>> export.verify_tflite("model.tflite", x_test, y_test, reference=model)
"""

from tfopt.export._tflite import TFLITE_MODES
from tfopt.export._tflite import tflite
from tfopt.export._verify import verify_tflite
