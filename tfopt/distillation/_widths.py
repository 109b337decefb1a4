"""The width plan of a tf-keras teacher: `tfopt.core.student_widths` over tf-keras' graph."""

import tensorflow as tf

from tfopt import _clone
from tfopt.core import student_widths
from tfopt.core.student_widths import PER_CHANNEL_CONFIG  # noqa: F401  (used by _student)
from tfopt.core.student_widths import depthwise_style  # noqa: F401
from tfopt.core.student_widths import units_multiplier  # noqa: F401
from tfopt.core.student_widths import width_key  # noqa: F401


class _Graph:
    """tf-keras' layer calls of a Sequential or Functional model, inputs first."""

    is_graph_model = staticmethod(_clone.is_graph_model)

    @staticmethod
    def calls(model):
        return [student_widths.Call(node.layer, node.keras_inputs, tf.nest.flatten(node.outputs),
                                    node.call_args, node.call_kwargs)
                for depth in sorted(model._nodes_by_depth, reverse=True)
                for node in model._nodes_by_depth[depth] if not node.is_input]


def Plan(model, width, narrowable):  # noqa: N802  (stands for the class it builds)
    """The student widths of a tf-keras `model`; see `tfopt.core.student_widths.Plan`."""
    return student_widths.Plan(model, width, narrowable, _Graph)
