"""The Keras 3 benchmark's targets and Markdown report."""

ROWS = ("keras3 float", "keras3 int8 QAT", "keras3 channels + shrink",
        "tf-keras float", "tf-keras int8 QAT", "tf-keras channels + shrink")


def _points(a, b):
    return 100.0 * abs(a - b)


def targets(r):
    rows, steps = r["rows"], r["step_times"]
    float3, qat3 = rows["keras3 float"], rows["keras3 int8 QAT"]
    shrunk3 = rows["keras3 channels + shrink"]
    qat_gap = 100.0 * (float3["keras_accuracy"] - qat3["accuracy"])
    pairs = (("int8 QAT file", "keras3 int8 QAT", "tf-keras int8 QAT"),
             ("channels 50% + shrink file", "keras3 channels + shrink",
              "tf-keras channels + shrink"))
    result = [
        {"name": "Keras 3 int8 QAT file within 0.5 points of the float model",
         "measured": f"{qat3['accuracy']:.2%} vs {float3['keras_accuracy']:.2%} "
                     f"({-qat_gap:+.2f} points)", "met": qat_gap <= 0.5},
        {"name": "Keras 3 int8 QAT file at least 1.8x faster than the float32 file "
                 "(1 thread, batch 1)",
         "measured": f"{qat3['speedup_vs_float']:.2f}x ({qat3['latency_ms']:.4f} vs "
                     f"{float3['latency_ms']:.4f} ms)", "met": qat3["speedup_vs_float"] >= 1.8},
        {"name": "Keras 3 shrink: latency gain at least 0.8 of the FLOPs reduction",
         "measured": f"{shrunk3['speedup_vs_float']:.2f}x faster / "
                     f"{shrunk3['flops_reduction']:.2f}x fewer FLOPs = "
                     f"{shrunk3['speedup_per_flops_reduction']:.2f}",
         "met": shrunk3["speedup_per_flops_reduction"] >= 0.8},
    ]
    for label, ours, theirs in pairs:
        gap = _points(rows[ours]["accuracy"], rows[theirs]["accuracy"])
        result.append({
            "name": f"Keras 3 and tf-keras tfopt within 0.3 points: {label}",
            "measured": f"Keras 3 {rows[ours]['accuracy']:.2%} vs tf-keras "
                        f"{rows[theirs]['accuracy']:.2%} ({gap:.2f} points)", "met": gap <= 0.3})
    result.append({
        "name": "Keras 3 int8 QAT file fully int8 (int8/int32 tensors, int8 input and "
                "output), builtin ops only",
        "measured": f"ops {', '.join(qat3['ops'])}; tensors {', '.join(qat3['tensor_dtypes'])}"
                    f"; input/output {', '.join(qat3['input_output_dtypes'])}",
        "met": qat3["fully_int8"]})
    ratio = steps["keras3 channels"]["vs_keras3_fine_tune"]
    result.append({
        "name": "Keras 3 training step with channel pruning at most 1.15x plain Keras 3 fit",
        "measured": f"{ratio:.2f}x ({steps['keras3 channels']['ms_per_step']:.2f} vs "
                    f"{steps['keras3 fine-tune']['ms_per_step']:.2f} ms/step)",
        "met": ratio <= 1.15})
    return result


def _opt(value, spec):
    return "-" if value is None else format(value, spec)


def _files_table(r):
    lines = ["| model | Keras | Keras acc | TFLite acc | agreement | bytes | size vs float "
             "| MFLOPs | parameters | latency ms | speedup vs float |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ROWS:
        row = r["rows"][name]
        keras_name, model = name.split(" ", 1)
        flops = row.get("flops")
        lines.append(
            f"| {model} ({row['mode']}) | {keras_name} | {row['keras_accuracy']:.2%} | "
            f"{row['accuracy']:.2%} | {row['agreement']:.2%} | {row['bytes']:,} | "
            f"{_opt(row.get('size_vs_float'), '.3f')}x | "
            f"{_opt(None if flops is None else flops / 1e6, '.2f')} | "
            f"{_opt(row.get('parameters'), ',')} | {row['latency_ms']:.4f} | "
            f"{_opt(row.get('speedup_vs_float'), '.2f')}x |")
    return [line.replace("| -x |", "| - |") for line in lines]


def _core_section(r):
    core, float3 = r["rows"]["keras3 core int8"], r["rows"]["keras3 float"]
    lines = ["## Keras 3 core `model.quantize(\"int8\")` (post-training, no fine-tune)", "",
             f"Quantized layers: {', '.join(core['quantized_layers']) or 'none'} (Keras "
             "quantizes Dense, EinsumDense and Embedding only; the convolutions stay float32). "
             f"Keras accuracy {core['keras_accuracy']:.2%} (float {float3['keras_accuracy']:.2%}"
             f"). Variable bytes (sum over `model.weights` of elements x dtype size): "
             f"{core['variable_bytes']:,} vs float {float3['variable_bytes']:,} "
             f"({core['variable_bytes'] / float3['variable_bytes']:.3f}x); `.keras` file "
             f"{core['keras_file_bytes']:,} vs {float3['keras_file_bytes']:,} bytes.", "",
             "| route to TFLite | result |", "|---|---|"]
    for route, outcome in core["conversions"].items():
        if outcome["ok"]:
            text = (f"converts: {outcome['bytes']:,} bytes, TFLite acc "
                    f"{outcome['accuracy']:.2%}, {outcome['latency_ms']:.4f} ms")
        else:
            text = "fails: `" + outcome["error"].replace("|", "\\|").replace("`", "'") + "`"
        lines.append(f"| `{route}` | {text} |")
    refusal = core["tfopt_export_refusal"]
    lines.append(f"| `tfopt.keras3.export.tflite` | "
                 f"{'refuses before converting: ' + refusal if refusal else 'converts'} |")
    return lines


def _steps_table(r):
    lines = ["| arm | epochs | ms/step | vs Keras 3 fine-tune (paired) | callback ms/step |",
             "|---|---|---|---|---|"]
    for name, s in r["step_times"].items():
        lines.append(f"| {name} | {s['epochs']} | {s['ms_per_step']:.2f} | "
                     f"{s['vs_keras3_fine_tune']:.2f}x | "
                     f"{_opt(s['callback_ms_per_step'], '.2f')} |")
    return lines


def markdown(r):
    env, f = r["environment"], r["flags"]
    v = env["versions"]
    title = "Keras 3 benchmark: Fashion-MNIST CNN" + (
        " (--quick: checks the code, numbers meaningless)" if r["quick"] else "")
    qat3, qat2 = r["rows"]["keras3 int8 QAT"], r["rows"]["tf-keras int8 QAT"]
    lines = [
        f"# {title}", "",
        f"{env['date']}; keras {v['keras']}, tf_keras {v['tf_keras']}, TF {v['tensorflow']}, "
        f"tfopt {v['tfopt']} ({r['tfopt_commit'][:12]}), ai-edge-litert {v['ai_edge_litert']}; "
        f"{env['cpus_usable']} CPUs; {r['train_examples']:,} training / {r['test_examples']:,} "
        f"test examples; wall time {env['wall_seconds']:.0f} s.", "",
        f"The reference CNN built with Keras 3 trains {f['epochs']} epochs (Adam 1e-3, batch "
        f"{f['batch_size']}); the same architecture built with tf-keras takes its weights. "
        f"From them, on the same batches: tfopt int8 QAT ({f['qat_epochs']} epoch(s), Adam "
        f"{f['qat_learning_rate']:g}, `export.tflite(mode=\"int8\")` without representative "
        f"data) and tfopt channels {f['channel_sparsity']:.0%} (`PolynomialDecay` to "
        f"{f['channel_sparsity']:g} at step {r['schedule']['end_step']}, "
        f"{f['prune_epochs']} epoch(s), Adam 1e-3, then `shrink`, float32 file), each on "
        "Keras 3 (`tfopt.keras3`) and tf-keras (`tfopt`). TFLite figures: LiteRT on the "
        "test set; latency single-thread, batch 1, median of "
        f"{f['latency_runs']:,} invocations per file, all files interleaved.", "",
        "## TFLite files", ""] + _files_table(r) + [
        "", f"Int8 files fully int8 with builtin ops only: Keras 3 "
        f"{'yes' if qat3['fully_int8'] else 'NO'} (ops {', '.join(qat3['ops'])}; tensors "
        f"{', '.join(qat3['tensor_dtypes'])}), tf-keras {'yes' if qat2['fully_int8'] else 'NO'}"
        f" (ops {', '.join(qat2['ops'])}).", ""] + _core_section(r) + [
        "", "## Training step time", ""] + _steps_table(r) + [
        "", f"Arms take turns of {f['rotate_every']} batches in rotating order (the QAT arms "
        f"only during their {f['qat_epochs']} epoch(s)); a step runs from one batch's start to "
        f"the next's, callbacks included, the first {f['warmup_batches']} of each turn "
        "dropped; \"paired\" is the median over turns of the arm's median step / the Keras 3 "
        "fine-tune's in the same turn. The Keras 3 fine-tune has a no-op callback where the "
        "pruned arm has `UpdatePruningStep`; \"callback\" is the mean time per step spent "
        "in that callback's batch hooks (part of the step).", "", "## Targets", ""]
    lines += [f"- {t['name']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})"
              for t in r["targets"]]
    lines += ["", "Reproduce: `python -m benchmarks.keras3_benchmark`."]
    return "\n".join(lines) + "\n"
