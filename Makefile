# Two entry points do all setup on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PANDA_HOME ?= $(CURDIR)/.panda
# The top-level dagster.yaml is the instance config (SQLite storage under PANDA_HOME, run queue, pools).
export DAGSTER_HOME := $(CURDIR)
export PANDA_DAGSTER_STORAGE ?= $(PANDA_HOME)/dagster/storage
export PANDA_DAGSTER_ARTIFACTS ?= $(PANDA_HOME)/dagster/artifacts
export PANDA_DAGSTER_LOGS ?= $(PANDA_HOME)/dagster/logs
export PANDA_MODELS ?= auto
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test ui lock clean-home bench deploy-test

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24" 2>&1 | grep -v "is ignored" || true
	# torch first, from the local CPU wheel: an unpinned resolve would pull GBs of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0 2>&1 | grep -v "is ignored" || true
	$(BIN)/pip install -q -r requirements.lock -c <(echo torch==2.13.0) 2>&1 | grep -v "is ignored" || true
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch, dagster, duckdb, av, decord, open_clip, transformers" 2>/dev/null || \
	  $(BIN)/python -c "from panda_dagster.lib.torch_compat import ensure_torchvision_importable as g; g(); import torch, dagster, duckdb, av, decord, open_clip, transformers"
	@# `source .venv/bin/activate` then gives the same environment as the Makefile.
	@grep -q "PANDA_DAGSTER_ENV" $(BIN)/activate || printf '%s\n' '' '# PANDA_DAGSTER_ENV: same environment as the Makefile' \
	  'export DAGSTER_HOME="$(CURDIR)"' 'export PANDA_HOME="$${PANDA_HOME:-$(CURDIR)/.panda}"' \
	  'export PANDA_DAGSTER_STORAGE="$$PANDA_HOME/dagster/storage"' \
	  'export PANDA_DAGSTER_ARTIFACTS="$$PANDA_HOME/dagster/artifacts"' \
	  'export PANDA_DAGSTER_LOGS="$$PANDA_HOME/dagster/logs"' >> $(BIN)/activate
	touch $(STAMP)

# The demo runs the `offline` profile (trained ASR, frame and sentence embedders from PyPI packages;
# random-weight captioners) unless PANDA_MODELS names another profile. Its speech is spoken by espeak-ng,
# installed here when missing and run as root with apt-get; otherwise the demo says ASR is skipped.
demo: setup
	@dpkg -s espeak-ng >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "demo: apt-get install espeak-ng (speech for the ASR stage)"; \
	  ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null ) \
	  || echo "demo: installing espeak-ng failed; the demo corpus will have no speech"; \
	  else echo "demo: espeak-ng missing (needs root and apt-get to install); the demo corpus will have no speech"; fi; }
	PANDA_MODELS=$(if $(filter auto,$(PANDA_MODELS)),offline,$(PANDA_MODELS)) $(BIN)/python -m panda_dagster.demo

test: setup system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian packages some tests drive for real: headless Chromium (web UI test), a PostgreSQL server
# (production instance test) and espeak-ng (speech for the ASR tests). Installs only what is missing, only as root with apt-get; otherwise
# says so, and those tests skip with the reason.
SYSTEM_DEPS := chromium postgresql espeak-ng
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then \
	  echo "system-deps: not installing$$missing (needs root and apt-get); the tests that use them will be skipped"; exit 0; fi; \
	echo "system-deps: apt-get install$$missing"; \
	( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null ) \
	  || echo "system-deps: installing$$missing failed; the tests that use them will be skipped"

# Web UI + daemon (schedules, sensors, backfills, run queue) on 127.0.0.1:$PORT (default 3000), with this
# folder's dagster.yaml as the instance and workspace.yaml's code location `panda_dagster`.
ui: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $${PORT:-3000}

# The Docker deployment for real (deploy/deploy_test.py): as root installs docker.io, docker-compose and
# debootstrap when missing, starts dockerd if none runs, builds the images (a debootstrap base where no
# registry is reachable; layers cached between runs), runs PostgreSQL, S3, user code, webserver and daemon
# on 127.0.0.1, pushes one shard through the whole graph in a run container, checks the catalog from S3,
# tears everything down. Last line: `deploy-test: ok (N assets, R s)` or the reason it failed.
deploy-test: setup
	$(BIN)/python deploy/deploy_test.py

# Per-stage throughput, the baselines (pure decode, stock scenedetect CLI) and one shard of ../shared/videos
# end to end through `dagster asset materialize`, with Dagster's share from the run's event log
# (benchmarks/pipeline_bench.py; last line `end-to-end: ...`). BENCH_ARGS adds e.g. `--scaling` (1 vs 2
# cores), `--compare-executors`, `--copies 5` (a 95-video shard). Shot-detection accuracy against the
# stock CLI: benchmarks/split_bench.py; the GPU path: benchmarks/gpu_bench.py.
BENCH_ARGS ?=
bench: setup
	$(BIN)/python benchmarks/pipeline_bench.py $(BENCH_ARGS)

# Regenerate the full pin set after editing requirements.txt.
lock:
	rm -rf /tmp/panda-lock && $(PYTHON) -m venv /tmp/panda-lock
	/tmp/panda-lock/bin/pip install -q torch==2.13.0
	/tmp/panda-lock/bin/pip install -q -r requirements.txt -c <(echo torch==2.13.0)
	(echo "# Full pinned dependency tree, generated by \`make lock\` from requirements.txt (torch is the local CPU wheel)."; \
	  /tmp/panda-lock/bin/pip freeze --all | grep -v "^pip==" | sed 's/^torch==2.13.0+cpu/torch==2.13.0/') > requirements.lock

clean-home:
	rm -rf $(PANDA_HOME)
