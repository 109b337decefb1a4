"""Pruning inside `fit`: schedules, criteria, structures, and model transforms.

Example:
  >>> from tfopt import pruning
  >>> pruned = pruning.prune(model, pruning.PolynomialDecay(0.0, 0.8, 0, 2000))
  >>> pruned.compile("adam", "sparse_categorical_crossentropy")
  >>> pruned.fit(x, y, callbacks=[pruning.UpdatePruningStep()])
  >>> plain = pruning.strip(pruned)
"""

from tfopt import _keras2  # noqa: F401  (first: tfmot must not rebind tf.keras)
from tfopt.pruning._callbacks import PruningSummaries
from tfopt.pruning._callbacks import UpdatePruningStep
from tfopt.pruning._criteria import Criterion
from tfopt.pruning._criteria import Custom
from tfopt.pruning._criteria import L2
from tfopt.pruning._criteria import Magnitude
from tfopt.pruning._criteria import Random
from tfopt.pruning._criteria import Taylor
from tfopt.pruning._flops import count_flops
from tfopt.pruning._prune import prune
from tfopt.pruning._prune import strip
from tfopt.pruning._report import LayerSparsity
from tfopt.pruning._report import SparsityReport
from tfopt.pruning._report import sparsity_report
from tfopt.pruning._schedules import ConstantSparsity
from tfopt.pruning._schedules import Iterative
from tfopt.pruning._schedules import OneShot
from tfopt.pruning._schedules import PolynomialDecay
from tfopt.pruning._schedules import PruningSchedule
from tfopt.pruning._shrink import shrink
from tfopt.pruning._wrapper import PruneWrapper
