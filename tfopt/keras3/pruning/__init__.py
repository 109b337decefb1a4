"""Pruning inside a Keras 3 `fit`: schedules, criteria, structures, and model transforms.

The Keras 3 twin of `tfopt.pruning`, under the same names. The schedules and
criteria are the same objects (`tfopt.core`); the layers are Keras 3 layers.

Example:
  >>> import keras
  >>> from tfopt.keras3 import pruning
  >>> pruned = pruning.prune(model, pruning.PolynomialDecay(0.0, 0.8, 0, 2000))
  >>> pruned.compile("adam", "sparse_categorical_crossentropy")
  >>> pruned.fit(x, y, callbacks=[pruning.UpdatePruningStep()])
  >>> plain = pruning.strip(pruned)  # or pruning.shrink(pruned) after structure="channels"
"""

from tfopt.keras3.pruning._callbacks import PruningSummaries
from tfopt.keras3.pruning._callbacks import UpdatePruningStep
from tfopt.keras3.pruning._flops import count_flops
from tfopt.keras3.pruning._layers import PrunedBatchNormalization
from tfopt.keras3.pruning._layers import PrunedBidirectional
from tfopt.keras3.pruning._layers import PrunedConv1D
from tfopt.keras3.pruning._layers import PrunedConv2D
from tfopt.keras3.pruning._layers import PrunedConv3D
from tfopt.keras3.pruning._layers import PrunedDense
from tfopt.keras3.pruning._layers import PrunedDepthwiseConv1D
from tfopt.keras3.pruning._layers import PrunedDepthwiseConv2D
from tfopt.keras3.pruning._layers import PrunedEinsumDense
from tfopt.keras3.pruning._layers import PrunedEmbedding
from tfopt.keras3.pruning._layers import PrunedGRU
from tfopt.keras3.pruning._layers import PrunedLSTM
from tfopt.keras3.pruning._layers import PrunedMultiHeadAttention
from tfopt.keras3.pruning._layers import PrunedSeparableConv1D
from tfopt.keras3.pruning._layers import PrunedSeparableConv2D
from tfopt.keras3.pruning._layers import PrunedSimpleRNN
from tfopt.keras3.pruning._layers import PruningMixin
from tfopt.keras3.pruning._objects import L2
from tfopt.keras3.pruning._objects import ConstantSparsity
from tfopt.keras3.pruning._objects import Criterion
from tfopt.keras3.pruning._objects import Custom
from tfopt.keras3.pruning._objects import Iterative
from tfopt.keras3.pruning._objects import Magnitude
from tfopt.keras3.pruning._objects import OneShot
from tfopt.keras3.pruning._objects import PolynomialDecay
from tfopt.keras3.pruning._objects import PruningSchedule
from tfopt.keras3.pruning._objects import Random
from tfopt.keras3.pruning._objects import Taylor
from tfopt.keras3.pruning._prune import prune
from tfopt.keras3.pruning._report import LayerSparsity
from tfopt.keras3.pruning._report import SparsityReport
from tfopt.keras3.pruning._report import sparsity_report
from tfopt.keras3.pruning._prune import strip
from tfopt.keras3.pruning._shrink import shrink
