# `make demo` and `make test` bootstrap .venv from pyproject.toml themselves.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: system venv test unit integration reliability demo model evaluate schemas bench bench-gpu bench-serving profile clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests drive: headless Chromium for the dashboard, kcat for the
# contract through a client no one here wrote, docker-compose to validate the compose
# file. Installed when missing (as root).
SYSTEM_PACKAGES := chromium chromium-driver kcat docker-compose
system:
	@missing=""; for p in /usr/bin/chromium /usr/bin/chromedriver /usr/bin/kcat /usr/bin/docker-compose; do test -x $$p || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null; }; \
	  else echo "not root: install $(SYSTEM_PACKAGES) with apt, or their tests are skipped"; fi; fi

# Two pytest processes, a test file each at a time: the integration tests mostly wait on
# real processes (a third of a core each), so two halve the wall time on CI's two cores.
test: $(STAMP) system
	$(BIN)/python -m pytest -q -rs -n 2 --dist loadfile

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# The fault suite alone (docs/RELIABILITY.md): faults injected into the real processes,
# and the parser fuzz, at full sizes (5 kills during 69,946 events, 10,200 poison
# messages, ...; about 15 minutes on 2 cores). `make test` runs it at reduced sizes.
reliability: $(STAMP)
	$(BIN)/python -m pytest -q -rs -s -m reliability --full-size

demo: $(STAMP)
	$(BIN)/memberstream demo

# Retrain the shipped model from ../shared/data and export it to triton_repo/.
model: $(STAMP)
	$(BIN)/memberstream train
	$(BIN)/memberstream export

# Every offline evaluation of docs/model.md (about 12 minutes on 2 cores).
EVAL_OUT := .memberstream/evaluation
evaluate: $(STAMP)
	@mkdir -p $(EVAL_OUT)
	for d in yoochoose cdnow online-retail diginetica; do \
	  $(BIN)/memberstream evaluate $$d --predictions $(EVAL_OUT)/$$d-predictions.csv \
	    --results docs/results/$$d.json || exit 1; done

# Throughput against its ceilings, measured in one run (bench/RESULTS.md).
bench: $(STAMP)
	$(BIN)/memberstream bench

# The GPU serving path (needs an NVIDIA GPU; bench/RESULTS-gpu.md and RESULTS.md's GPU section):
# bf16 and fp32, full and incremental encoding, batches 1-1,024, against the CPU path.
# `python -m bench.gpu --device cpu` runs the same measures on the CPU (a dry run).
bench-gpu: $(STAMP)
	$(BIN)/python -m bench.gpu

# Where the pipeline's time goes (py-spy; bench/PROFILE.md).
profile: $(STAMP)
	$(BIN)/python -m bench.profile_pipeline

# The served computation's CPU pieces per 256 rows (encoder variants, id codecs), and the
# bench log's scoring mix with what length groups and a prefix cache spare: tables.
bench-serving: $(STAMP)
	$(BIN)/python -m bench.serving
	$(BIN)/python -m bench.scoring_mix

schemas: $(STAMP)
	$(BIN)/memberstream schemas

clean:
	rm -rf $(VENV) .memberstream .pytest_cache
