# `make run` and `make test` set everything up on a fresh machine (Python 3.11 with venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The fused C++ RNN kernels, compiled for this TensorFlow and CPU (models/fused.py); rebuilt when the source changes.
KERNELS := $(VENV)/.kernels-built
# The Airflow extra (rnnpipe[airflow]), which the tests use: the whole stack pinned with Airflow.
AIRFLOW := $(VENV)/.airflow-installed
UV_VERSION := 0.13.9

.PHONY: run test test-slow notebooks bench lint system-deps lock clean

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (as on this
# project's machines) every process would compile TensorFlow's sources again: about 19 s of each start-up.
$(STAMP): requirements.lock setup.py Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "rnnpipe needs Python 3.11, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	@# An existing venv (uv compiles only what it installs); a few packages ship files no Python 3.11 compiles.
	-$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib/python3.11/site-packages
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

$(AIRFLOW): $(STAMP) requirements-airflow.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements-airflow.lock
	touch $(AIRFLOW)

$(KERNELS): $(STAMP) models/kernels/rnn_kernels.cc models/fused.py
	$(BIN)/python -m rnnpipe.models.build_kernels
	touch $(KERNELS)

# `rnnpipe run` fetches the default data first (once; cached), so one process does both.
run: $(KERNELS)
	$(BIN)/rnnpipe run sentiment

# Two pytest workers (pytest-xdist), each given whole test files, so a module's pipeline run is made once: much of
# the suite waits on Beam, subprocesses and small TensorFlow graphs that leave a core idle. On 2 cores: 588-630 s
# against 993-1107 s in one process. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(KERNELS) $(AIRFLOW)
	$(BIN)/pytest -m "not slow" -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-slow: $(KERNELS) $(AIRFLOW)
	$(BIN)/pytest -m slow -q

# After `make run`: executes notebooks/*.ipynb against this folder's runs; copies with outputs in notebooks/executed/.
notebooks: $(KERNELS)
	$(BIN)/python notebooks/run.py .

bench: $(KERNELS)
	$(BIN)/python benchmarks/stage_times.py
	$(BIN)/python benchmarks/rnn_layers.py --quick
	$(BIN)/python benchmarks/epoch_transitions.py --rounds 1
	$(BIN)/python benchmarks/cli_latency.py
	$(BIN)/python benchmarks/evaluator_memory.py
	$(BIN)/python benchmarks/ets_filter.py
	$(BIN)/python benchmarks/theta_layer.py

lint: $(STAMP)
	$(BIN)/ruff check .

# Debian packages the later applications need (speech: espeak-ng, sox, flite; translation: sword).
system-deps:
	apt-get update && apt-get install -y --no-install-recommends espeak-ng sox flite pocketsphinx-testdata \
		libsword-utils sword-text-kjv sword-text-sparv postgresql

# Re-pin the whole stack after editing requirements.in (or requirements-airflow.in).
# The Airflow lock first: the base lock takes its versions of every package both hold (-c), so `make run` runs
# the versions `make test` tested and installing the Airflow lock over it moves nothing.
lock: $(STAMP)
	$(BIN)/uv pip compile requirements-airflow.in --python-version 3.11 -o requirements-airflow.lock
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -c requirements-airflow.lock -o requirements.lock

clean:
	rm -rf pipeline_root serving mlflow.db mlartifacts
