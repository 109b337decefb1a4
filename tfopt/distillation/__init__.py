"""Knowledge distillation as a Keras model: train a small student inside `fit`.

Example:
  >>> from tfopt import distillation
  >>> d = distillation.Distiller(teacher, student, temperature=4.0, alpha=0.1)
  >>> d.compile(optimizer="adam", metrics=["accuracy"])
  >>> d.fit(x, y, epochs=3)
"""

from tfopt import _keras2  # noqa: F401  (first: tfmot must not rebind tf.keras)
from tfopt.distillation._distiller import Distiller
from tfopt.distillation._student import make_student
