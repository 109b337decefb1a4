# Two entry points: `make demo` runs tfopt-optimize on digits (the main job: every stage, the
# report, the exports) and the export example that fills serving/models; `make test` the suite
# (without the tests marked slow: the real-architecture matrix, which `make test-slow` runs;
# CI runs both).
# Both create (or reuse) a virtual environment in .venv and install tfopt into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo examples test test-slow benchmark benchmark-pruning benchmark-quantization benchmark-distillation benchmark-export benchmark-serving benchmark-coverage benchmark-headline benchmark-keras3 bazel-test clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,benchmark]"
	touch $@

# --overwrite: a run left by an older tfopt (other defaults) starts over instead of being refused.
demo: $(VENV)/.installed
	$(VENV)/bin/tfopt-optimize --model=builtin:reference_cnn --data=digits --output_dir=runs/digits --overwrite
	$(PY) examples/export_digits.py
	$(PY) examples/keras3_digits.py

# The pipeline's steps by hand, through the Python API (each prints its own table).
examples: $(VENV)/.installed
	$(PY) examples/prune_digits.py
	$(PY) examples/quantize_digits.py
	$(PY) examples/distill_digits.py
	$(PY) examples/export_digits.py
	$(PY) examples/keras3_digits.py

# The suite runs in TEST_WORKERS processes (pytest-xdist); each imports TensorFlow, so
# more workers than cores gains nothing and costs memory.
TEST_WORKERS ?= 2

test: $(VENV)/.installed
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=5 -m "not slow" tests

# One pytest process per file: models of the architecture matrices stay in memory until
# their process ends, and one process for every slow test peaked near 19 GB. All files
# run; the target fails if any did.
SLOW_TEST_FILES = $(shell grep -rl --include='test_*.py' 'mark.slow' tests | sort)

test-slow: $(VENV)/.installed
	@status=0; for file in $(SLOW_TEST_FILES); do \
	  $(PY) -m pytest --durations=5 -m slow $$file || status=1; \
	done; exit $$status

# Fashion-MNIST comes from Debian: sudo apt-get install dataset-fashion-mnist
benchmark: benchmark-headline benchmark-pruning benchmark-quantization benchmark-distillation benchmark-export benchmark-serving benchmark-keras3

# tfopt-optimize's default recipe against tfmot's prune+PQAT recipe and the float model (~6 min).
benchmark-headline: $(VENV)/.installed
	$(PY) -m benchmarks.headline_benchmark

benchmark-pruning: $(VENV)/.installed
	$(PY) -m benchmarks.pruning_benchmark

benchmark-quantization: $(VENV)/.installed
	$(PY) -m benchmarks.quantization_benchmark

benchmark-distillation: $(VENV)/.installed
	$(PY) -m benchmarks.distillation_benchmark

benchmark-export: $(VENV)/.installed
	$(PY) -m benchmarks.export_benchmark

# tfopt-serve against a hand-written FastAPI server and the in-process floor (loopback, ~6 min).
benchmark-serving: $(VENV)/.installed
	$(PY) -m benchmarks.serving_benchmark

# tfopt on Keras 3 against Keras' own int8 and tfopt's tf-keras path (~5 min).
benchmark-keras3: $(VENV)/.installed
	$(PY) -m benchmarks.keras3_benchmark

# What works on the 14 real architectures, tfopt and tfmot side by side (about an hour).
benchmark-coverage: $(VENV)/.installed
	$(PY) -m benchmarks.coverage

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# Same tests through Bazel (Debian: apt-get install bazel-bootstrap bazel-rules-java).
bazel-test: $(VENV)/.installed
	bazel test //...
