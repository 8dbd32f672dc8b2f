# cifar-workbook: `make run` reproduces the report, `make test` checks the workbook.
# Both set themselves up: the first call creates .venv and installs into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PARAMS ?=
SEEDS  ?=
FORCE  ?= 0
YES    ?= 0
# make report: whose runs (PARAMS or RESULTS_DIR; default results/) and in which language (en or ko).
# Not LANG: that is the locale every shell sets.
RESULTS_DIR ?=
REPORT_LANG ?= en
SMOKE_PARAMS := params/smoke.yaml
SMOKE_SEEDS_PARAMS := params/smoke-seeds.yaml
# nbval re-executes the smoke-run notebooks and the committed 04, and checks the
# cells tagged nbval-check-output (timings, paths and addresses sanitized).
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: install run smoke report test lab bench docker-test clean help

help:
	@echo "make run     execute notebooks 01-06 with papermill (report protocol; PARAMS=params/smoke.yaml for a CPU smoke run)"
	@echo "make smoke   the same on generated data, on the CPU: 2.5 minutes on 2 cores, one busy (README)"
	@echo "make report  the written report (PDF) and the executed notebooks as HTML, from the runs (PARAMS=, REPORT_LANG=ko)"
	@echo "make test    pytest, papermill smoke runs and nbval"
	@echo "make lab     JupyterLab on the notebooks"
	@echo "make bench   plain PyTorch loop vs the engine, seconds per epoch (a subset on the CPU)"
	@echo "make docker-test  build the Docker image with buildah and run the smoke profile in it (slow, root)"
	@echo "make install create $(VENV) and install the workbook into it"

install: $(VENV)/.installed

# jupyter_setup.py too: an environment set up before it changed gets its Jupyter settings again.
$(VENV)/.installed: pyproject.toml cifar_helpers/workbook/jupyter_setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m cifar_helpers.workbook.jupyter_setup
	touch $@

run: install
	$(BIN)/python -m cifar_helpers.workbook.run_all $(if $(PARAMS),--params $(PARAMS)) $(if $(SEEDS),--seeds $(SEEDS)) \
		$(if $(filter 1,$(FORCE)),--force) $(if $(filter 1,$(YES)),--yes)

smoke: install
	$(MAKE) --no-print-directory run PARAMS=$(SMOKE_PARAMS)

# report/report.pdf from results/ (PARAMS=params/smoke.yaml: report/smoke/ from results/smoke/), its source,
# figures, the executed notebooks as HTML and index.html.
report: install
	$(BIN)/python -m cifar_helpers.workbook.written_report $(if $(PARAMS),--params $(PARAMS)) \
		$(if $(RESULTS_DIR),--results-dir $(RESULTS_DIR)) --lang $(REPORT_LANG)

# The smoke run trains from scratch; its checkpoints and first-seed results files are then
# removed so that nbval's re-execution trains again (a finished run's record would only be
# shown) and must reproduce the seeded metrics.
test: install
	$(BIN)/python -m cifar_helpers.workbook.run_all --params $(SMOKE_PARAMS) --force
	$(BIN)/python -m cifar_helpers.workbook.run_all --params $(SMOKE_SEEDS_PARAMS) --force
	$(BIN)/python -m cifar_helpers.workbook.written_report --params $(SMOKE_PARAMS)
	rm -rf checkpoints/smoke checkpoints/smoke-seeds results/smoke/*.json results/smoke-seeds/*.json
	$(BIN)/python -m pytest tests $(NBVAL) executed/*.ipynb executed/smoke-seeds/*.ipynb \
		notebooks/04_custom_resnet_architecture.ipynb

# As root (containers, lab machines) JupyterLab refuses to start without --allow-root.
lab: install
	@if [ "$$(id -u)" = 0 ]; then echo "make lab: running as root, so starting JupyterLab with --allow-root"; fi
	$(BIN)/jupyter lab --ip 127.0.0.1 --LabApp.default_url=/lab/tree/notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Plain DataLoader loop vs the engine in one process; on the CPU a subset (it says so).
bench: install
	$(BIN)/python benchmarks/epoch_speed.py --suite

# Builds the image with buildah on a local stand-in for the PyTorch base and runs the
# README's Docker commands in it (root; 66 min the first time on 2 busy cores, 5.5 min after).
docker-test:
	bash docker/test-image.sh

clean:
	rm -rf executed checkpoints/smoke checkpoints/smoke-seeds results/smoke results/smoke-seeds \
		figures/smoke figures/smoke-seeds report/smoke .pytest_cache
