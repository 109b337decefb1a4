"""Pruning for Keras 3 models (``import keras``); so far the FLOP count.

Example:
  >>> from tfopt.keras3 import pruning
  >>> pruning.count_flops(model)
"""

from tfopt.keras3.pruning._flops import count_flops
