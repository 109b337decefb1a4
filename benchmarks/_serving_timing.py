"""SavedModel versions measured as TF Serving runs them: size, load time, signature latency.

Every model is loaded with `export.SavedModelBundle` (TensorFlow's TF1
SavedModel loader, tag ``serve``, a fresh graph and session: what TF Serving
does) and called through its ``serving_default`` SignatureDef. Timings alternate between
the models in rotating order, so load from other processes hits all alike.
"""

import os
import time

import numpy as np
import tensorflow as tf

from tfopt import measure
from tfopt import export
from tfopt.export import _layout

SIGNATURE = "serving_default"


def directory_size(version_dir):
    """Bytes and gzip bytes (file by file, level 9) of a version, and of its warmup file.

    The warmup file is request data, not model, so it is counted apart.
    """
    sizes = {"bytes": 0, "gzip_bytes": 0, "warmup_bytes": 0}
    warmup = os.path.join(version_dir, _layout.WARMUP_FILE)
    for parent, _, names in os.walk(version_dir):
        for name in names:
            path = os.path.join(parent, name)
            raw, compressed = measure.file_size(path)
            if path == warmup:
                sizes["warmup_bytes"] = raw
            else:
                sizes["bytes"] += raw
                sizes["gzip_bytes"] += compressed
    return sizes


def load(version_dir, threads):
    """The version loaded as TF Serving loads it, with `threads` intra-op threads (0: all)."""
    # One inter-op thread: these graphs are chains, and a second pool would only
    # compete with the intra-op threads for the CPUs.
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                      inter_op_parallelism_threads=1)
    return export.SavedModelBundle(version_dir, session_config=config)


def _rotated(names, turn):
    shift = turn % len(names)
    return names[shift:] + names[:shift]


def load_times(version_dirs, runs, threads):
    """``{model: median ms}`` of a load (fresh graph and session, variables restored).

    One untimed load of each model first (TensorFlow's one-time op
    registration), then `runs` loads of each, the models taking turns.
    """
    for path in version_dirs.values():
        load(path, threads).close()
    names = list(version_dirs)
    times = {name: [] for name in names}
    for run in range(runs):
        for name in _rotated(names, run):
            start = time.perf_counter()
            bundle = load(version_dirs[name], threads)
            times[name].append(time.perf_counter() - start)
            bundle.close()
    return {name: 1000.0 * float(np.median(t)) for name, t in times.items()}


def signature_latencies(bundles, inputs, rounds, runs):
    """Round medians (ms) of `serving_default` calls on `inputs`, ``{model: [ms per round]}``.

    After a warm-up, each round times ``runs // rounds`` calls (at least one)
    of every model, the models taking turns in rotating order.
    """
    names = list(bundles)
    per_round = max(1, runs // rounds)
    for bundle in bundles.values():
        for _ in range(max(10, per_round // 5)):
            bundle.run(SIGNATURE, inputs)
    medians = {name: [] for name in names}
    for turn in range(rounds):
        for name in _rotated(names, turn):
            times = []
            for _ in range(per_round):
                start = time.perf_counter()
                bundles[name].run(SIGNATURE, inputs)
                times.append(time.perf_counter() - start)
            medians[name].append(1000.0 * float(np.median(times)))
    return medians


def layer_times(bundle, layer_names, inputs, runs):
    """Median ms per Keras layer of one `serving_default` run, from TensorFlow's trace.

    Each graph node is charged to the first part of its name that is one of
    `layer_names` (``.../fashion_cnn/conv2d/Relu`` to ``conv2d``); "other"
    holds the rest (arguments, variable reads), "session" the call time no op
    accounts for (Python, feeding and fetching, the function call). Tracing
    slows ops a little: these figures say where the time goes, the untraced
    latencies say how much there is.

    Returns:
      ``{layer: ms}`` in the order of `layer_names`, then "other" and "session".
    """
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    per_run = []
    for _ in range(runs):
        metadata = tf.compat.v1.RunMetadata()
        start = time.perf_counter()
        bundle.run(SIGNATURE, inputs, options=options, run_metadata=metadata)
        total = 1000.0 * (time.perf_counter() - start)
        times = {}
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                layer = next((part for part in node.node_name.split("/")
                              if part in layer_names), "other")
                times[layer] = times.get(layer, 0.0) + node.all_end_rel_micros / 1000.0
        times["session"] = max(0.0, total - sum(times.values()))
        per_run.append(times)
    found = {key for times in per_run for key in times}
    return {key: float(np.median([times.get(key, 0.0) for times in per_run]))
            for key in [*layer_names, "other", "session"] if key in found}
