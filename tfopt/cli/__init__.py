"""tfopt's command-line tools, absl apps; the console scripts start them here.

Each entry point silences TensorFlow's start-up log lines (`tfopt.quiet`)
before the tool's module, and with it TensorFlow, is imported.
"""

import importlib

from tfopt import quiet


def _start(tool):
    quiet.silence_tensorflow()
    importlib.import_module(f"tfopt.cli.{tool}").run()


def run_prune():
    """The `tfopt-prune` console script."""
    _start("prune")


def run_export():
    """The `tfopt-export` console script."""
    _start("export")


def run_kit():
    """The `tfopt-kit` console script."""
    _start("kit")


def run_monitor():
    """The `tfopt-monitor` console script."""
    _start("monitor")


def run_serve():
    """The `tfopt-serve` console script."""
    _start("serve")


def run_optimize():
    """The `tfopt-optimize` console script."""
    _start("optimize")
