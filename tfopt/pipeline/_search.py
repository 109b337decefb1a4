"""The accuracy-aware search: the smallest model within an accuracy drop, or one that meets targets.

A run given ``max_accuracy_drop``, ``target_size_kb`` or ``target_latency_us``
does not take its stage parameters from the caller: it tries candidates from
`LADDER`, a ladder of (width, channel_fraction, sparsity) settings ordered
from the mildest to the most aggressive, and picks one:

- with ``max_accuracy_drop``: the most aggressive candidate whose TFLite
  accuracy stays within the drop of the float model's (the smallest, and on
  CPU the fastest, model that keeps the accuracy);
- with only size or latency targets: the mildest candidate that meets them
  (the most accurate one that is small and fast enough).

Accuracy falls and size shrinks along the ladder, so the search bisects it:
three or four candidates instead of seven. Candidates train on the training
split less a held-out validation split (`validation_split`) and are judged
on that split alone; the test split measures only the chosen candidate. Each
candidate is an ordinary run of the recipe in ``candidates/NN/`` (resumable
like the run itself), so a killed search continues where it stopped. Like
NetAdapt (Yang et al., 2018) the search spends its budget on settings that
meet the constraint, measured on the device's runtime (LiteRT), not on a
proxy such as parameter count.
"""

import dataclasses
import math
import os

import numpy as np
from absl import logging

from tfopt.pipeline import _recipe
from tfopt.pipeline import _sequence

# (width, channel_fraction, sparsity), mildest first; the pipeline's defaults are a rung.
LADDER = ((1.0, 0.25, 0.5), (1.0, 0.4, 0.6), (0.75, 0.25, 0.6), (0.75, 0.4, 0.7),
          (0.5, 0.5, 0.7), (0.5, 0.5, 0.8), (0.35, 0.5, 0.85))
PARAMETERS = ("width", "channel_fraction", "sparsity")
# The stage each searched parameter belongs to: a recipe without it leaves it unused.
_STAGE_OF = {"width": "distill", "channel_fraction": "channels", "sparsity": "unstructured"}
# The share of the training split held out to judge candidates (at least one example a class
# is not required: accuracy is judged on the split as it falls).
VALIDATION_SHARE = 0.1
CANDIDATES_DIR = "candidates"


@dataclasses.dataclass(frozen=True)
class Goals:
    """What the search must reach; None where not asked.

    Attributes:
      max_accuracy_drop: the largest drop of TFLite accuracy below the float
        model's, in percentage points (0.5 allows 90.0% -> 89.5%).
      target_size_kb: the largest gzipped TFLite file, in KB (1000 bytes).
      target_latency_us: the largest single-thread LiteRT latency at batch 1,
        in microseconds.
    """

    max_accuracy_drop: float = None
    target_size_kb: float = None
    target_latency_us: float = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            low = 0 if field.name == "max_accuracy_drop" else math.ulp(0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= low):
                raise ValueError(f"{field.name} must be a number >= {low:g} (or None); got "
                                 f"{value!r}.")

    @property
    def active(self):
        return any(value is not None for value in dataclasses.astuple(self))

    def as_dict(self):
        return dataclasses.asdict(self)

    def missed(self, candidate, float_accuracy):
        """The goals `candidate` (stage figures) misses, by name, in the order of the fields."""
        missed = []
        if (self.max_accuracy_drop is not None and
                (float_accuracy - candidate["tflite_accuracy"]) * 100 > self.max_accuracy_drop
                + 1e-9):
            missed.append("max_accuracy_drop")
        if (self.target_size_kb is not None
                and candidate["tflite_gzip_bytes"] > self.target_size_kb * 1000):
            missed.append("target_size_kb")
        if (self.target_latency_us is not None
                and candidate["latency_ms"] * 1000 > self.target_latency_us):
            missed.append("target_latency_us")
        return missed


def validation_split(train, seed):
    """``(fit, validation)``: `train` less a seeded `VALIDATION_SHARE` of it, and that share."""
    x, y = train
    if len(x) < 2:
        raise ValueError(f"the accuracy-aware search holds out {VALIDATION_SHARE:.0%} of the "
                         f"training data to judge candidates; {len(x)} training example(s) "
                         "leave none. Give more training data.")
    held_out = max(1, int(round(len(x) * VALIDATION_SHARE)))
    order = np.random.default_rng(seed).permutation(len(x))
    keep, validate = np.sort(order[held_out:]), np.sort(order[:held_out])
    return (x[keep], y[keep]), (x[validate], y[validate])


def rungs(recipe):
    """The ladder's settings that differ for `recipe`, as {parameter: value}, mildest first.

    A parameter whose stage the recipe leaves out is dropped, and rungs left
    equal merged: "distill,qat" searches the width alone.
    """
    found = []
    for rung in LADDER:
        setting = {name: value for name, value in zip(PARAMETERS, rung)
                   if _STAGE_OF[name] in recipe}
        if setting not in found:
            found.append(setting)
    return found


def search(evaluate, settings, goals, float_accuracy):
    """Bisects `settings` (mildest first) for the candidate the goals ask for.

    Args:
      evaluate: ``evaluate(index) -> figures`` of the last stage of candidate
        `index` on the validation split (trains it, or reads it back).
      settings: the candidates' settings, mildest first (`rungs`).
      goals: the `Goals`.
      float_accuracy: the float model's TFLite accuracy on the validation split.

    Returns:
      ``(chosen index, missed goals of the chosen candidate, indices tried in
      order)``. With no candidate meeting every goal, the chosen one is the
      best found: with an accuracy drop asked, the most accurate candidate
      when none keeps the accuracy, else the smallest that does; with targets
      alone, the smallest.
    """
    tried = {}

    def result(index):
        if index not in tried:
            tried[index] = evaluate(index)
        return tried[index]

    def keeps_accuracy(index):
        return "max_accuracy_drop" not in goals.missed(result(index), float_accuracy)

    def meets_targets(index):
        return not set(goals.missed(result(index), float_accuracy)) - {"max_accuracy_drop"}

    if goals.max_accuracy_drop is not None:
        # The last rung that keeps the accuracy; it is the smallest of those.
        chosen = _last_true(keeps_accuracy, len(settings), start=_middle(settings))
        if chosen is None:
            chosen = max(tried, key=lambda index: tried[index]["tflite_accuracy"])
    else:
        # The first rung that meets the targets; it is the most accurate of those.
        chosen = _first_true(meets_targets, len(settings), start=_middle(settings))
        if chosen is None:
            chosen = min(tried, key=lambda index: tried[index]["tflite_gzip_bytes"])
    return chosen, goals.missed(result(chosen), float_accuracy), list(tried)


def _middle(settings):
    """Where bisection starts: the pipeline's default rung when the ladder holds it."""
    return (len(settings) - 1) // 2


def _last_true(predicate, count, start):
    """The largest i in [0, count) with predicate(i), for a predicate true up to some i."""
    low, high, found, probe = 0, count - 1, None, start
    while low <= high:
        if predicate(probe):
            found, low = probe, probe + 1
        else:
            high = probe - 1
        probe = (low + high + 1) // 2
    return found


def _first_true(predicate, count, start):
    """The smallest i in [0, count) with predicate(i), for a predicate true from some i on."""
    low, high, found, probe = 0, count - 1, None, start
    while low <= high:
        if predicate(probe):
            found, high = probe, probe - 1
        else:
            low = probe + 1
        probe = (low + high) // 2
    return found


def run_search(output_dir, options, goals, model, teacher, train, test, validation, place):
    """Runs the search in `output_dir`: its chosen candidate's stages, measured on `test`.

    Returns ``(stages, candidates, search)``: the chosen candidate's stages
    re-measured on the test split, every candidate tried (its last stage on
    the validation split, with "parameters_tried"), and what the report says
    of the search.
    """
    held_out = validation is None
    if held_out:
        train, validation = validation_split(train, options.seed)
        logging.warning("tfopt.pipeline: the search judges candidates on %d training examples "
                        "held out of the stages' training; if the float model trained on "
                        "them, it scores too well there and the search errs toward milder "
                        "settings (give validation data the model did not train on)",
                        len(validation[0]))
    settings = rungs(options.recipe)
    root = os.path.join(output_dir, CANDIDATES_DIR)
    float_validation = _sequence.finish_stage(root, _sequence.FLOAT_STAGE, "float",
                                       lambda: (model, model, 0), model, validation, place)
    runs = {}

    def evaluate(index):
        directory = os.path.join(root, _candidate_name(index, settings[index]))
        logging.info("tfopt.pipeline: candidate %d of at most %d: %s", index + 1,
                     len(settings), _search_text(settings[index]))
        runs[index] = _sequence.run_stages(
            directory, dataclasses.replace(options, **settings[index]), model, teacher, train,
            validation, place, float_validation)
        return runs[index][-1]

    chosen, missed, tried = search(evaluate, settings, goals,
                                   float_validation["tflite_accuracy"])
    chosen_dir = os.path.join(root, _candidate_name(chosen, settings[chosen]))
    stages = [_sequence.finish_stage(output_dir, _sequence.FLOAT_STAGE, "float",
                              lambda: (model, model, 0), model, test, place)]
    for figures in runs[chosen][1:]:
        stage = figures["stage"]
        stages.append(_sequence.remeasured(
            output_dir, stage, os.path.join(chosen_dir, _sequence.STAGES_DIR, stage), model,
            test))
    candidates = [{**runs[index][-1], "parameters_tried": settings[index],
                   "missed": goals.missed(runs[index][-1], float_validation["tflite_accuracy"])}
                  for index in tried]
    if missed:
        logging.warning("tfopt.pipeline: no candidate met %s; the best found (%s) is the run's "
                        "result", ", ".join(_goal_text(goals, name) for name in missed),
                        _search_text(settings[chosen]))
    summary = {"goals": goals.as_dict(), "chosen": settings[chosen], "missed": missed,
               "validation_examples": len(validation[0]),
               "validation": ("held out of the training data" if held_out
                              else "validation data given to the run"),
               "float_validation_accuracy": float_validation["tflite_accuracy"],
               "candidates_tried": len(tried), "ladder": settings}
    return stages, candidates, summary


def _candidate_name(index, setting):
    return f"{index:02d}-" + "-".join(f"{name}{value:g}" for name, value in setting.items())


def _search_text(setting):
    return ", ".join(f"{name}={value:g}" for name, value in setting.items()) or "the recipe"


def _goal_text(goals, name):
    return f"{name}={getattr(goals, name):g}"


def validate_searched_defaults(options):
    """Raises ValueError if `options` sets a parameter the search chooses."""
    defaults = _recipe.Options()
    given = [f"{name}={getattr(options, name)!r}" for name in PARAMETERS
             if getattr(options, name) != getattr(defaults, name)]
    if given:
        raise ValueError(f"{', '.join(given)}: the accuracy-aware search (max_accuracy_drop, "
                         f"target_size_kb, target_latency_us) chooses "
                         f"{', '.join(PARAMETERS)} itself; leave them at their "
                         "defaults, or give no search goal to run with your values.")
