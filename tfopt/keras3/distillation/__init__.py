"""Knowledge distillation for Keras 3 models, on `keras.distillation`.

The Keras 3 twin of `tfopt.distillation`, under the same names.

Example:
  >>> from tfopt.keras3 import distillation
  >>> student = distillation.make_student(teacher, width=0.5, weights="teacher")
  >>> d = distillation.Distiller(teacher, student, temperature=4.0, alpha=0.1)
  >>> d.compile(optimizer="adam", metrics=["accuracy"])
  >>> d.fit(x, y, epochs=3)
"""

from tfopt.keras3.distillation._distiller import Distiller
from tfopt.keras3.distillation._student import make_student
