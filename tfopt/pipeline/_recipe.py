"""What a pipeline run does: its stages, in order, and the options of each.

The stages always run in one order, each starting from the model the one
before it left: ``distill`` (a narrower student, trained against the float
model), ``channels`` (whole channels pruned and removed), ``unstructured``
(single weights set to zero), ``qat`` (quantization-aware training, then an
int8 file). A recipe picks a subset; ``"auto"`` is all four. Every stage but
``qat`` keeps training against the float model as a teacher (`Distiller`),
so each one recovers toward the float model's answers rather than only the
labels.
"""

import dataclasses
import math

STAGES = ("distill", "channels", "unstructured", "qat")
AUTO = "auto"
CRITERIA = ("magnitude", "l2", "taylor", "random")
# QAT schemes by their command-line names; fixed4 is tfopt's 4-bit FixedPoint.
QAT_SCHEMES = ("int8_prune_preserving", "int8", "binary", "fixed4")
# Only these keep the zeros of unstructured pruning through training.
ZERO_KEEPING_SCHEMES = ("int8_prune_preserving",)


def parse_recipe(recipe):
    """The stage names of `recipe` ("auto", "distill,channels,..." or a list), in order.

    Raises:
      ValueError: an unknown or repeated stage, or stages out of order, with
        the allowed order.
    """
    if isinstance(recipe, str):
        if recipe.strip() == AUTO:
            return list(STAGES)
        names = [name.strip() for name in recipe.split(",") if name.strip()]
    elif isinstance(recipe, (list, tuple)) and all(isinstance(n, str) for n in recipe):
        names = list(recipe)
    else:
        raise TypeError(f"recipe must be 'auto', a comma-separated string or a list of stage "
                        f"names; got {recipe!r}.")
    order = f"{AUTO!r}, or stages from {list(STAGES)} in that order"
    if not names:
        raise ValueError(f"recipe={recipe!r} names no stage; use {order}.")
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise ValueError(f"recipe={recipe!r}: unknown stage(s) {unknown}; use {order}.")
    if len(set(names)) != len(names):
        raise ValueError(f"recipe={recipe!r} repeats a stage; use {order}.")
    if names != sorted(names, key=STAGES.index):
        raise ValueError(f"recipe={recipe!r} is out of order; use {order}, e.g. "
                         f"{','.join(sorted(names, key=STAGES.index))!r}.")
    return names


@dataclasses.dataclass(frozen=True)
class Options:
    """The options of a run; `as_dict` is what run.json records and a restart must match.

    Attributes:
      recipe: the stage names, in order (`parse_recipe`).
      width: the student's width relative to the float model, in (0, 1].
      channel_fraction: the share of the student's channels the channels stage
        removes, in (0, 1).
      sparsity: the share of weights the unstructured stage sets to zero, in (0, 1).
      criterion: how the channels stage ranks channels (`CRITERIA`).
      qat_scheme: the quantization of the qat stage (`QAT_SCHEMES`).
      epochs_per_stage: training epochs of each stage, at least 1.
      min_steps_per_stage: training steps each stage gets at least, as whole
        epochs (`stage_epochs`): on a small data set one epoch is a few dozen
        steps, too few for a stage to recover. 0 leaves `epochs_per_stage` alone.
      batch_size: training batch size, at least 1.
      temperature: the distillation temperature, above 0.
      seed: the seed of weights and data order.
    """

    recipe: tuple = STAGES
    width: float = 0.75
    channel_fraction: float = 0.4
    sparsity: float = 0.7
    criterion: str = "taylor"
    qat_scheme: str = "int8_prune_preserving"
    epochs_per_stage: int = 1
    min_steps_per_stage: int = 300
    batch_size: int = 64
    temperature: float = 2.0
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "recipe", tuple(parse_recipe(self.recipe)))
        _check_number("width", self.width, 0, 1, upper_included=True)
        _check_number("channel_fraction", self.channel_fraction, 0, 1)
        _check_number("sparsity", self.sparsity, 0, 1)
        _check_number("temperature", self.temperature, 0, math.inf)
        for name, allowed in (("criterion", CRITERIA), ("qat_scheme", QAT_SCHEMES)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {list(allowed)}.")
        for name in ("epochs_per_stage", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
        for name in ("min_steps_per_stage", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0; got {value!r}.")
        if ("unstructured" in self.recipe and "qat" in self.recipe
                and self.qat_scheme not in ZERO_KEEPING_SCHEMES):
            raise ValueError(f"qat_scheme={self.qat_scheme!r} does not keep the zeros of the "
                             f"unstructured stage (training moves them again); use "
                             f"{ZERO_KEEPING_SCHEMES[0]!r}, or leave 'unstructured' out of the "
                             "recipe.")

    def stage_epochs(self, examples):
        """The epochs a stage trains on `examples` training examples.

        `epochs_per_stage`, or more whole epochs when those fall short of
        `min_steps_per_stage` steps.
        """
        return max(self.epochs_per_stage,
                   math.ceil(self.min_steps_per_stage / self.steps_per_epoch(examples)))

    def steps_per_epoch(self, examples):
        return math.ceil(examples / self.batch_size)

    def as_dict(self):
        values = dataclasses.asdict(self)
        values["recipe"] = list(self.recipe)
        return values


def _check_number(name, value, low, high, upper_included=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or not (low < value and (value <= high if upper_included else value < high)):
        interval = f"({low}, {high}{']' if upper_included else ')'}"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}.")
