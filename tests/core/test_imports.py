import pkgutil
import subprocess
import sys

import tfopt.core

FRAMEWORKS = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization")


def test_core_imports_no_framework():
    modules = sorted(f"tfopt.core.{m.name}" for m in pkgutil.iter_modules(tfopt.core.__path__))
    assert "tfopt.core.masks" in modules
    script = (f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
              f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]", result.stdout
