"""What the pruning callbacks decide, for either Keras: groups, checks and warnings.

`UpdatePruningStep` and `PruningSummaries` exist once per Keras version (each
subclasses its Keras' Callback and reads its variables); what they decide is
here: which pruned layers lead and which follow, which arguments are valid,
and what to warn about.
"""

import os


def pruned_groups(layers, name_of):
    """[(leader, [followers])] of a model's pruned layers.

    Args:
      layers: the model's pruned layers (each with `follow`: None for a leader,
        else the name of the layer it follows).
      name_of: ``layer -> the name followers use for it``.
    """
    leaders = [layer for layer in layers if layer.follow is None]
    by_name = {name_of(layer): layer for layer in leaders}
    followers = {name_of(layer): [] for layer in leaders}
    for layer in layers:
        if layer.follow is not None:
            if layer.follow not in by_name:
                raise ValueError(f"{layer.name!r} follows {layer.follow!r}, which is not a "
                                 "pruned layer of this model.")
            followers[layer.follow].append(layer)
    return [(leader, followers[name_of(leader)]) for leader in leaders]


def execution_warnings(schedules, steps):
    """Warnings for schedules whose pruning steps fall inside Keras' multi-step calls.

    Args:
      schedules: the distinct schedules of the model's leaders.
      steps: ``steps_per_execution`` (1: no warning).
    """
    warnings = []
    if steps <= 1:
        return warnings
    for schedule in schedules:
        grid = [getattr(schedule, name, None) for name in ("begin_step", "frequency")]
        if any(value is not None and value % steps for value in grid):
            warnings.append(
                f"steps_per_execution={steps} and schedule {schedule!r}: masks change between "
                f"Keras' calls of {steps} steps, so pruning steps that fall inside a call are "
                f"applied at its start (up to {steps - 1} steps early). Use begin_step and "
                f"frequency that are multiples of {steps} to follow the schedule exactly.")
    return warnings


def stopped_early_warning(step, final, name, sparsity):
    """A warning if training stopped at `step` before the schedule's final update, else None.

    Args:
      step: the next training step.
      final: the schedule's ``(step, sparsity)`` final update, or None.
      name: the pruned layer's name.
      sparsity: the layer's sparsity now.
    """
    if final is None or final[0] < step:
        return None
    final_step, target = final
    return (f"training stopped at step {step}, before the schedule's pruning step {final_step} "
            f"that reaches sparsity {target:.2f}; {name} is at sparsity {sparsity:.2f}. Train "
            f"for at least {final_step - step + 1} more steps, or end the schedule earlier "
            "(end_step below the number of steps fit runs: epochs * steps per epoch).")


def validate_summaries(log_dir, update_freq):
    """Checks PruningSummaries' arguments; returns the log directory as a string."""
    if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
        raise ValueError(f"update_freq must be 'epoch' or a positive number of steps, "
                         f"got {update_freq!r}.")
    if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
        raise ValueError(f"log_dir must be a directory path for the TensorBoard event "
                         f"files, got {log_dir!r}.")
    return os.fspath(log_dir)
