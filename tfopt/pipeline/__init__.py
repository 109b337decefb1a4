"""The staged optimize run behind tfopt-optimize: distill, prune channels, prune weights, QAT.

`optimize` runs a recipe of stages on a trained classifier, each in ordinary
``fit`` training with tfopt's own API, and keeps every stage's model, TFLite
file and figures in its output directory, so a stopped run continues where
it stopped.
"""

from tfopt import _keras2  # noqa: F401  (first: tfmot must not rebind tf.keras)
from tfopt.pipeline._recipe import CRITERIA
from tfopt.pipeline._recipe import QAT_SCHEMES
from tfopt.pipeline._recipe import STAGES
from tfopt.pipeline._run import Result
from tfopt.pipeline._run import RunConflict
from tfopt.pipeline._run import optimize
from tfopt.pipeline._strategy import STRATEGIES
from tfopt.pipeline._strategy import make as make_strategy

__all__ = ["CRITERIA", "QAT_SCHEMES", "STAGES", "STRATEGIES", "Result", "RunConflict",
           "make_strategy", "optimize"]
