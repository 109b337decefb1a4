"""Serving on loopback: tfopt-serve against a hand-written FastAPI server and the in-process floor.

Trains two models on Fashion-MNIST, each float and channel-pruned + shrunk:
the reference CNN (small convolutions: per-request overhead dominates) and a
wide MLP (two 4096-unit dense layers, 20M weights: each call reads every
weight once, so batching shares that read among the rows). Exports them with
`export.saved_model` and loads each at concurrency 1, 8 and 32 (batch 1)
against:
  (a) tfopt-serve without batching, REST and gRPC (a subprocess);
  (b) tfopt-serve with --enable_batching and a --batching_parameters_file from
      `export.batching_config` (its defaults, one batch thread a CPU), REST
      and gRPC (a subprocess);
  (c) FastAPI on uvicorn calling `model.predict` per request, REST (a subprocess);
  (d) the floor: the serving_default signature called in-process
      (`export.SavedModelBundle`).
Then counts failed requests while versions 2 and 3 are exported into the base
path of a server under load. Reports requests/s, p50 and p99 and three
targets; writes benchmarks/results/serving.{json,md} (serving_quick.* with --quick).

    python -m benchmarks.serving_benchmark [--quick]
"""

import os
import tempfile
import threading
import time


import numpy as np
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from benchmarks import _common
from benchmarks import _serving_load as load
from benchmarks._common import clone
from benchmarks._common import compile_model
from benchmarks._common import quiet
from tfopt import datasets
from tfopt import export
from tfopt import pruning

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Few examples, short load loops: checks the code, not the "
                  "numbers. Writes serving_quick.{json,md}.")
flags.DEFINE_integer("train_examples", 10000, "Fashion-MNIST training examples.", lower_bound=1)
flags.DEFINE_integer("epochs", 1, "Epochs of float training.", lower_bound=1)
flags.DEFINE_integer("finetune_epochs", 1, "Epochs of channel-pruning fine-tuning.",
                     lower_bound=1)
flags.DEFINE_float("channel_sparsity", 0.5, "Fraction of channels removed, in (0, 1).")
flags.DEFINE_integer("mlp_units", 4096, "Units of each of the wide MLP's two hidden layers.",
                     lower_bound=1)
flags.DEFINE_list("concurrency", ["1", "8", "32"], "Client threads per load loop.")
flags.DEFINE_integer("max_requests", 3000, "Requests per load loop at most.", lower_bound=1)
flags.DEFINE_float("max_seconds", 3.0, "Seconds per load loop at most.", lower_bound=0.1)
flags.DEFINE_float("version_seconds", 4.0, "Seconds between versions 1 -> 2 -> 3 in the "
                   "hot-version test.", lower_bound=1.0)
flags.DEFINE_integer("seed", 0, "Seed of weights and batch order.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR, "Where serving.json and serving.md go.")
flags.register_validator("channel_sparsity", lambda v: 0 < v < 1,
                         "--channel_sparsity must be in (0, 1), e.g. 0.5.")
flags.register_validator("concurrency", lambda v: all(s.isdigit() and int(s) > 0 for s in v),
                         "--concurrency must be positive integers, e.g. 1,8,32.")

QUICK = dict(train_examples=2560, max_requests=300, max_seconds=1.0, version_seconds=2.0,
             mlp_units=512)
FAMILIES = ("cnn", "mlp")
MODELS = tuple(f"{family}-{kind}" for family in FAMILIES for kind in ("float", "shrunk"))
TARGET_CLIENTS = 32


def wide_mlp(units):
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)), layers.Flatten(),
        layers.Dense(units, activation="relu"), layers.Dense(units, activation="relu"),
        layers.Dense(10),
    ], name="fashion_mlp")


def train_models(x, y):
    """{"cnn-float", "cnn-shrunk", "mlp-float", "mlp-shrunk"}: each family float and shrunk."""
    models = {}
    for family, build in (("cnn", _common.reference_cnn),
                          ("mlp", lambda: wide_mlp(FLAGS.mlp_units))):
        float_model, shrunk = train_family(build(), x, y)
        models[f"{family}-float"], models[f"{family}-shrunk"] = float_model, shrunk
    return models


def train_family(model, x, y):
    """(`model` trained, its channel-pruned and shrunk copy)."""
    baseline = compile_model(model)
    baseline.fit(x, y, batch_size=128, epochs=FLAGS.epochs, verbose=0)
    steps = FLAGS.finetune_epochs * -(-len(x) // 128)
    frequency = max(1, steps // 5)
    schedule = pruning.PolynomialDecay(0.0, FLAGS.channel_sparsity, begin_step=0,
                                       end_step=max(frequency, (steps * 7 // 10)
                                                    // frequency * frequency),
                                       frequency=frequency)
    pruned = compile_model(pruning.prune(clone(baseline), schedule, structure="channels"))
    pruned.fit(x, y, batch_size=128, epochs=FLAGS.finetune_epochs, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return baseline, pruning.shrink(pruned)


def _cell(make_caller, clients):
    result = load.run_load(make_caller, clients, FLAGS.max_requests, FLAGS.max_seconds)
    logging.info("  %d clients: %.0f req/s p50 %.2f ms p99 %.2f ms, %d failed", clients,
                 result["requests_per_second"], result["p50_ms"], result["p99_ms"],
                 result["failures"])
    return result


def measure(models, version_dirs, keras_paths, x, work, batching_file):
    """[{"model", "server", "protocol", "clients", figures...}] for every cell."""
    rows, clients = [], [int(c) for c in FLAGS.concurrency]

    def add(model, server, protocol, make_caller):
        logging.info("%s %s %s", model, server, protocol)
        for n in clients:
            rows.append({"model": model, "server": server, "protocol": protocol,
                         "clients": n, **_cell(make_caller, n)})

    for model in MODELS:
        base_path = os.path.dirname(version_dirs[model])
        for server, batching in (("tfopt-serve", False), ("tfopt-serve batching", True)):
            log = os.path.join(work, f"{model}-{batching}.log")
            with load.tfopt_serve(model, base_path, log,
                                  batching_file=batching_file if batching else None) as ports:
                add(model, server, "rest", lambda: load.rest_caller(model, ports["rest"], x))
                add(model, server, "grpc", lambda: load.grpc_caller(model, ports["grpc"], x))
        with load.fastapi_server(model, keras_paths[model],
                                 os.path.join(work, f"{model}-fastapi.log")) as ports:
            add(model, "FastAPI + model.predict", "rest",
                lambda: load.rest_caller(model, ports["rest"], x))
        bundle = export.SavedModelBundle(version_dirs[model])
        try:
            add(model, "in-process signature (floor)", "-",
                lambda: load.bundle_caller(bundle, x))
        finally:
            bundle.close()
    return rows


def hot_versions(model, x, work):
    """Load over gRPC (8 clients) while versions 2 and 3 are exported into the base path."""
    base_path = os.path.join(work, "hot", "model")
    with quiet():
        export.saved_model(model, base_path, version=1)
    bound = 6 * FLAGS.version_seconds
    with load.tfopt_serve("hot", base_path, os.path.join(work, "hot.log"),
                          poll_seconds=1) as ports:
        def add_versions():
            for version in (2, 3):
                time.sleep(FLAGS.version_seconds)
                with quiet():
                    export.saved_model(model, base_path, version=version)
        adder = threading.Thread(target=add_versions, daemon=True)
        adder.start()
        result = load.run_load(lambda: load.grpc_caller("hot", ports["grpc"], x), 8,
                               max_requests=10**9, max_seconds=bound)
        adder.join()
        states = load.version_states("hot", ports["rest"])
    result["version_states"] = states
    result["served_version_3"] = states.get(3) == "AVAILABLE"
    return result


def _find(rows, model, server, protocol, clients):
    for row in rows:
        if (row["model"], row["server"], row["protocol"], row["clients"]) == (
                model, server, protocol, clients):
            return row
    return None


def targets(rows, hot):
    out = []
    hand = _find(rows, "cnn-float", "FastAPI + model.predict", "rest", TARGET_CLIENTS)
    if hand:
        best = max((r for r in rows if r["model"] == "cnn-float" and r["server"].startswith(
            "tfopt-serve") and r["clients"] == TARGET_CLIENTS),
            key=lambda r: r["requests_per_second"])
        ratio = best["requests_per_second"] / hand["requests_per_second"]
        out.append({"name": f"tfopt-serve >= 10x the hand-written server's req/s at "
                            f"{TARGET_CLIENTS} clients (cnn-float)",
                    "measured": f"{best['server']} {best['protocol']} "
                                f"{best['requests_per_second']:.0f} / FastAPI "
                                f"{hand['requests_per_second']:.0f} req/s = {ratio:.2f}x",
                    "met": ratio >= 10})
    for family in FAMILIES:
        plain = _find(rows, f"{family}-float", "tfopt-serve", "grpc", TARGET_CLIENTS)
        batched = _find(rows, f"{family}-float", "tfopt-serve batching", "grpc", TARGET_CLIENTS)
        if plain and batched:
            ratio = batched["requests_per_second"] / plain["requests_per_second"]
            out.append({"name": f"batching >= 2x no batching at {TARGET_CLIENTS} clients "
                                f"({family}-float, gRPC)",
                        "measured": f"{batched['requests_per_second']:.0f} / "
                                    f"{plain['requests_per_second']:.0f} req/s = {ratio:.2f}x",
                        "met": ratio >= 2})
    grpc1 = _find(rows, "cnn-float", "tfopt-serve", "grpc", 1)
    floor1 = _find(rows, "cnn-float", "in-process signature (floor)", "-", 1)
    if grpc1 and floor1:
        gap = grpc1["p50_ms"] - floor1["p50_ms"]
        out.append({"name": "gRPC batch-1 p50 within 1 ms of the in-process floor at "
                            "concurrency 1 (cnn-float)",
                    "measured": f"{grpc1['p50_ms']:.2f} - {floor1['p50_ms']:.2f} ms = "
                                f"{gap:.2f} ms",
                    "met": gap <= 1.0})
    out.append({"name": "0 failed requests while versions 1 -> 2 -> 3 are added under load "
                        "(cnn-float)",
                "measured": f"{hot['failures']} failed of {hot['requests']}; version 3 "
                            f"{'AVAILABLE' if hot['served_version_3'] else 'NOT available'}",
                "met": hot["failures"] == 0 and hot["served_version_3"]})
    return out


def markdown(r):
    lines = [f"# Serving benchmark{' (quick: checks the code only)' if r['quick'] else ''}",
             "", f"Loopback, batch 1, each cell at most {r['flags']['max_requests']} requests "
             f"or {r['flags']['max_seconds']} s; {r['environment']['cpus_usable']} CPUs, "
             f"client threads in the benchmark process. Wall time "
             f"{r['environment']['wall_seconds']} s.", "",
             "Models (Fashion-MNIST; shrunk = channel-pruned and shrunk): " + ", ".join(
                 f"{name} {count:,} parameters" for name, count in r["parameters"].items())
             + ". Batching: " + ", ".join(f"{k} {v}" for k, v in r["batching"].items())
             + " (export.batching_config).", "",
             "| model | server | protocol | clients | req/s | p50 ms | p99 ms | failed |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['model']} | {row['server']} | {row['protocol']} | "
                     f"{row['clients']} | {row['requests_per_second']:.0f} | "
                     f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['failures']} |")
    hot = r["hot_versions"]
    lines += ["", f"Hot versions (8 gRPC clients, versions 2 and 3 exported "
              f"{r['flags']['version_seconds']} s apart, polling every 1 s): "
              f"{hot['requests']} requests, {hot['failures']} failed, "
              f"{hot['requests_per_second']:.0f} req/s; final states {hot['version_states']}.",
              "", "| target | measured | |", "|---|---|---|"]
    for t in r["targets"]:
        lines.append(f"| {t['name']} | {t['measured']} | {'met' if t['met'] else 'NOT met'} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    start = time.perf_counter()
    if FLAGS.quick:
        for name, value in QUICK.items():
            if not FLAGS[name].present:
                FLAGS[name].value = value
    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, _) = _common.load_fashion_mnist(
        FLAGS.data_dir, FLAGS.train_examples, 100)
    models = train_models(x_train, y_train)
    logging.info("trained in %.0f s", time.perf_counter() - start)
    x = x_test[:1].astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        version_dirs, keras_paths = {}, {}
        for name, model in models.items():
            with quiet():
                version_dirs[name] = export.saved_model(model, os.path.join(work, name),
                                                        warmup_inputs=x_test[:8])
            keras_paths[name] = os.path.join(work, f"{name}.keras")
            model.save(keras_paths[name])
        batching_file = os.path.join(work, "batching.config")
        batching = export.batching_config(batching_file, num_batch_threads=os.cpu_count() or 1)
        rows = measure(models, version_dirs, keras_paths, x, work, batching_file)
        hot = hot_versions(models["cnn-float"], x, work)
    flag_values = {name: FLAGS[name].value for name in (
        "quick", "train_examples", "epochs", "finetune_epochs", "channel_sparsity",
        "mlp_units", "concurrency", "max_requests", "max_seconds", "version_seconds", "seed",
        "data_dir")}
    r = {"quick": FLAGS.quick, "flags": flag_values, "rows": rows, "hot_versions": hot,
         "parameters": {name: m.count_params() for name, m in models.items()},
         "batching": {field.name: value.value for field, value in batching.ListFields()},
         "targets": targets(rows, hot)}
    r["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    stem = "serving_quick" if FLAGS.quick else "serving"
    _common.write_results(FLAGS.output_dir, stem, r, markdown(r))


if __name__ == "__main__":
    app.run(main)
