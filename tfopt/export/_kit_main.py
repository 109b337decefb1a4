"""Writes the deployment kit for an exported model: ``python -m tfopt.export._kit_main``.

Example (the kit checked in under serving/, after ``make demo`` exported
serving/models):

    cd serving && python -m tfopt.export._kit_main --export_root=models \\
        --model_name=digits --output_dir=.
"""

from absl import flags

from tfopt.cli import _app

flags.DEFINE_string("export_root", None, "The export root tfopt-export wrote (models.config, "
                    "batching.config, monitoring.config, <model_name>/<version>/).")
flags.DEFINE_string("model_name", None, "The model to serve, as named in models.config.")
flags.DEFINE_string("output_dir", ".", "Where the kit goes (docker-compose.yml, kubernetes/, "
                    "kserve/).")
flags.mark_flags_as_required(["export_root", "model_name"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise _app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from tfopt.export import _kit
    try:
        written = _kit.serving_kit(FLAGS.export_root, FLAGS.model_name, FLAGS.output_dir)
    except (TypeError, ValueError) as error:
        raise _app.UsageError(str(error)) from error
    for name in sorted(written):
        print(name)


def run(argv=None):
    import sys
    _app.run(main, "tfopt-kit", sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
