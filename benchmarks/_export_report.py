"""The tables of benchmarks/export_benchmark.py: figures, ratios, time per layer, targets."""

LABELS = {"float": "float CNN", "shrunk": "tfopt channels {:.0%} + shrink",
          "distilled": "tfopt make_student({:g}) + Distiller"}


def label(name, flag_values):
    return LABELS[name].format(flag_values["channel_sparsity"] if name == "shrunk"
                               else flag_values["width"])


def markdown(r):
    env, f, rows = r["environment"], r["flags"], r["rows"]
    threads = "all CPUs" if f["threads"] == 0 else f"{f['threads']} intra-op thread" + (
        "s" if f["threads"] > 1 else "")
    lines = [f"# Export benchmark: Fashion-MNIST SavedModels under TensorFlow"
             f"{' (--quick: checks the code, numbers meaningless)' if r['quick'] else ''}", "",
             f"{env['date']}; TF {env['versions']['tensorflow']}, tfopt "
             f"{env['versions']['tfopt']}; {env['cpus_usable']} CPUs; "
             f"{r['train_examples']:,} training and {r['test_examples']:,} test examples. "
             f"Float CNN: {f['epochs']} epochs. Shrunk: channel pruning fine-tuned "
             f"{f['finetune_epochs']} epochs, then `shrink`. Distilled: "
             f"`make_student(weights=\"teacher\")`, {f['student_epochs']} epochs of `Distiller` "
             f"(T {f['temperature']:g}, alpha {f['alpha']:g}). Each exported with "
             f"`export.saved_model` ({f['warmup_examples']} warmup examples), loaded by tag "
             f"`serve` in a fresh graph and session ({threads}; TF_ENABLE_ONEDNN_OPTS "
             f"{r['tf_enable_onednn_opts']}), called through `serving_default`.", "",
             "| model | test acc (served) | parameters | MFLOPs | SavedModel KB | gzip KB "
             "| load ms | batch 1 ms | batch 32 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(
            f"| {label(name, f)} | {row['served_accuracy']:.2%} | {row['parameters']:,} | "
            f"{row['flops'] / 1e6:.2f} | {row['bytes'] / 1024:.0f} | "
            f"{row['gzip_bytes'] / 1024:.0f} | {row['load_ms']:.1f} | "
            f"{row['batch1_ms']:.3f} | {row['batch32_ms']:.3f} |")
    lines += ["", "Against the float CNN (higher is better):", "",
              "| model | accuracy points | parameters | FLOPs | size | gzip size | load "
              "| batch 1 | batch 32 | batch-32 speedup / FLOPs reduction |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in list(rows.items())[1:]:
        points = 100 * (row["served_accuracy"] - rows["float"]["served_accuracy"])
        lines.append(
            f"| {label(name, f)} | {points:+.2f} | {row['parameter_reduction']:.2f}x | "
            f"{row['flops_reduction']:.2f}x | {row['size_reduction']:.2f}x | "
            f"{row['gzip_size_reduction']:.2f}x | {row['load_speedup']:.2f}x | "
            f"{row['batch1_speedup']:.2f}x | {row['batch32_speedup']:.2f}x | "
            f"{row['batch32_speedup_per_flops_reduction']:.2f} |")
    lines += [""] + _layer_table(r) + ["", "## Targets", ""]
    lines += [f"- {t['name']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})"
              for t in r["targets"]]
    lines += ["", "Sizes: `saved_model.pb` and `variables/` (gzip: file by file, level 9); the "
              "warmup file in `assets.extra/` is request data and counted apart in the JSON. "
              f"Load: median of {f['load_runs']} loads per model after one untimed load, the "
              "models taking turns. Latency: the median over "
              f"{f['latency_rounds']} rounds of each round's median call time "
              f"({f['latency_runs']} calls per model and batch size in all, on test images, "
              "after a warm-up); in each round the models take turns in rotating order. "
              "Speedups are paired: the median over rounds of the float model's time / the "
              "model's in the same round. Test accuracy is computed from the SavedModel's "
              "outputs; `max_abs_diff` in the JSON compares them with the Keras model's.", "",
              "Reproduce: `make benchmark-export` or `python -m benchmarks.export_benchmark` "
              "(about 3 minutes on 2 idle CPUs; `--quick` checks the code in 20 s; `--threads=0` "
              "times with all CPUs, TF Serving's default)."]
    return "\n".join(lines) + "\n"


def _layer_table(r):
    """Time per layer of a traced batch-32 call beside its FLOPs: where a cut pays."""
    rows, f = r["rows"], r["flags"]
    base, shrunk = rows["float"], rows["shrunk"]
    layers = list(dict.fromkeys(key for row in rows.values() for key in row["batch32_layer_ms"]))
    lines = [f"Where a batch-32 call spends its time (median of {f['trace_runs']} traced runs, "
             "ms; \"session\" is the call time no op accounts for), and how much each layer's "
             "time and FLOPs fall from the float CNN to the shrunk one:", "",
             "| layer | " + " | ".join(label(name, f) for name in rows)
             + " | float / shrunk time | float / shrunk FLOPs |",
             "|---|" + "---|" * (len(rows) + 2)]
    for layer in layers:
        ms = [row["batch32_layer_ms"].get(layer, 0.0) for row in rows.values()]
        flops = base["layer_flops"].get(layer), shrunk["layer_flops"].get(layer)
        lines.append(f"| {layer} | " + " | ".join(f"{t:.3f}" for t in ms)
                     + f" | {_ratio(ms[0], ms[1])} | {_ratio(*flops)} |")
    lines += ["", f"The ops alone (all rows but \"session\"): float {base['batch32_op_ms']:.3f} "
              f"ms, shrunk {shrunk['batch32_op_ms']:.3f} ms, a {shrunk['batch32_op_speedup']:.2f}x "
              f"speedup, {shrunk['batch32_op_speedup_per_flops_reduction']:.2f} of the FLOPs "
              "reduction."]
    return lines


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"
