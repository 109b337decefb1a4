"""tfopt-kit: write the deployment kit for a model tfopt-export exported.

Example (the kit checked in under serving/, after `make demo` exported
serving/models):

  cd serving && tfopt-kit --export_root=models --model_name=digits --output_dir=.

Writes docker-compose.yml, kubernetes/ (ConfigMap, PersistentVolumeClaim,
Deployment, Service, HorizontalPodAutoscaler) and kserve/inferenceservice.yaml
for the official tensorflow/serving image, from the export root's own
models.config, batching.config and monitoring.config, and prints the files
written. An export root TF Serving could not start from (a config missing or
not parsing, the model not listed, a listed model without a version) is a
usage error: exit status 2, one line, nothing written.
"""

import sys

from absl import flags

from tfopt.cli import _app
from tfopt.cli import _flags

_EXPORT_ROOT = flags.DEFINE_string(
    "export_root", None, "The export root tfopt-export wrote: models.config, batching.config, "
    "monitoring.config and <model_name>/<version>/ (required).")
_MODEL_NAME = _flags.shared_string(
    "model_name", "The model's name in TF Serving and in models.config, e.g. 'digits' "
    "(required).", __name__)
# Shared with tfopt-monitor, which has no default: an empty value means ".".
_OUTPUT_DIR = _flags.shared_string("output_dir", "Where the kit goes (docker-compose.yml, "
                                   "kubernetes/, kserve/). Default: the current directory.",
                                   __name__)


def main(argv):
    if len(argv) > 1:
        raise _app.UsageError(f"unexpected arguments {argv[1:]}; every input is a flag, "
                              "e.g. --export_root=models.")
    missing = [flag for flag, holder in (("--export_root", _EXPORT_ROOT),
                                         ("--model_name", _MODEL_NAME)) if not holder.value]
    if missing:
        raise _app.UsageError(f"{' and '.join(missing)} must be given. See tfopt-kit --help.")
    from tfopt import export  # pylint: disable=import-outside-toplevel  (after quiet)
    try:
        written = export.serving_kit(_EXPORT_ROOT.value, _MODEL_NAME.value,
                                      _OUTPUT_DIR.value or ".")
    except (TypeError, ValueError, FileNotFoundError) as error:
        raise _app.UsageError(str(error)) from error
    for name in sorted(written):
        print(name)


def run(argv=None):
    _app.run(main, "tfopt-kit", sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
