# graspstack: `make demo` (set up, then the main job) and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
GS := $(BIN)/graspstack
STAMP := $(VENV)/.setup-stamp
DEMO := runs/demo

.PHONY: setup test test-all lint format bench bench-revisions demo clean constraints proto chaos

setup: $(STAMP) system-packages

# Reinstall only when the dependency files change; pip sees torch==2.13.0 and takes the CPU wheel on disk.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# Debian's redis-server and prometheus (with promtool), installed only when missing.
.PHONY: system-packages
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

test: setup
	$(BIN)/pytest -q

# Everything, the minutes-long renders included.
test-all: setup
	$(BIN)/pytest -q -m ''

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m benchmarks.run --out reports/bench.json

# A speed-up checked against another revision, both timed interleaved on the same frames (this
# machine's speed wanders between runs): make bench-revisions BASE=<rev> [PREDICTOR=model:v17] [SLICE=hard]
PREDICTOR ?= model:v17
SLICE ?= nominal
bench-revisions: setup
	@test -n "$(BASE)" || { echo "usage: make bench-revisions BASE=<git revision>"; exit 2; }
	$(BIN)/python -m benchmarks.revisions --base $(BASE) --predictor $(PREDICTOR) --slice $(SLICE) \
	  --out reports/revisions-$(subst :,-,$(PREDICTOR))-$(SLICE).json

# The main job: a staged pilot on the local system (started if needed), first of the shipped active
# model, then of a deliberately degraded copy that must roll back; reports in runs/pilot/.
# Before that, a glance at the lab: one scene with its ground truth and the baselines' scores.
demo: setup
	$(GS) lab render --out $(DEMO)/data/nominal --scenes 20 --seed 9001 --slice nominal
	$(GS) lab show --scene $(DEMO)/data/nominal/000000 --out $(DEMO)/scene_ground_truth.png
	$(GS) eval --data $(DEMO)/data --predictor scripted --plot $(DEMO)/scripted_errors.png
	$(GS) pilot --candidate $$(cat models/pose/ACTIVE)
	$(GS) pilot --candidate degraded
	$(GS) down
	@echo "demo outputs: $(DEMO)/ and runs/pilot/"

# Regenerate graspstack/v1 from protos/graspstack/v1 (a test fails when they drift).
proto: setup
	$(BIN)/python -m graspstack.protogen

# Failure tests of the flywheel against real redis-server processes: a table of produced,
# stored, duplicated and lost cases per scenario (exits non-zero on any loss or duplicate).
chaos: setup
	$(BIN)/python -m graspstack.flywheel.chaos

# Refresh the lock after changing dependencies in pyproject.toml.
constraints:
	$(BIN)/pip freeze --exclude-editable | grep -v '^graspstack' > constraints.txt

# Also numba's compiled-kernel caches (cache=True writes them beside the sources): one left stale by
# an edit once failed every new process with "NRT_adapt_ndarray_to_python: descr is NULL".
clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
	find graspstack -name '*.nbi' -delete -o -name '*.nbc' -delete

# Load test against the running local system (`GRASPSTACK_POSE_MODEL=mean graspstack up` first): locust
# robots stream a real lab frame, ask pose, ask grasp. Fails when the pose p99 is over 100 ms or any
# request fails (loadtests/check.py, plus locust's own exit code). CSV and HTML under runs/load/.
LOAD := runs/load
USERS ?= 4
SPAWN_RATE ?= 2
DURATION ?= 60s
LOCUST := $(BIN)/locust -f loadtests/locustfile.py --headless
.PHONY: load capacity load-up

# Rendered once; the users send these PNGs as they are on disk.
$(LOAD)/frames/.rendered:
	$(GS) lab render --out $(LOAD)/frames --scenes 20 --seed 9500 --slice nominal --workers 1
	@touch $@

load-up:
	@$(GS) status >/dev/null || { echo "the local system is not up or not healthy; start it with"; \
	  echo "  GRASPSTACK_POSE_MODEL=mean $(GS) up"; echo "graspstack status says:"; $(GS) status; exit 1; }

load: setup $(LOAD)/frames/.rendered load-up
	$(LOCUST) -u $(USERS) -r $(SPAWN_RATE) -t $(DURATION) --only-summary \
	  --csv $(LOAD)/load --html $(LOAD)/load.html; \
	  locust_rc=$$?; $(BIN)/python -m loadtests.check $(LOAD)/load && exit $$locust_rc

# Steps the number of robots (1, 2, 4, 8, 16) and records the most served at pose p99 under 100 ms.
capacity: setup $(LOAD)/frames/.rendered load-up
	$(BIN)/python -m loadtests.capacity --out $(LOAD)/capacity.json
