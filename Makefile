# leaklab: `make lab` to learn, `make test` to check everything. `make help` lists the rest.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
# Compiled at install, as pip does: where Python may not write its bytecode caches (PYTHONDONTWRITEBYTECODE,
# a venv that other users run from, as on the hub), every process would otherwise compile what it imports.
UV_INSTALL = $(BIN)/uv pip install --quiet --native-tls --compile-bytecode --python $(BIN)/python
LAB_ARGS ?=
LESSONS ?=
CLASS_ARGS ?=
LANGS ?=
LEAKLAB_LANG ?=
export LEAKLAB_LANG
# The course in another language: its lab keeps its own JupyterLab settings (the interface's language).
LANG_SETTINGS = $(CURDIR)/.leaklab/jupyter/lab-settings-$(LEAKLAB_LANG)
ZH_CN_PACK := jupyterlab-language-pack-zh-CN==4.5.post3
BENCH_ARGS ?=

# Jupyter, IPython and matplotlib keep their config, data and runtime files inside the project,
# never in the user's home: the course config is in grader/, everything written goes to .leaklab/.
export JUPYTER_CONFIG_DIR := $(CURDIR)/grader/jupyter
export JUPYTER_DATA_DIR := $(CURDIR)/.leaklab/jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.leaklab/jupyter/runtime
export JUPYTERLAB_SETTINGS_DIR := $(CURDIR)/.leaklab/jupyter/lab-settings
export JUPYTERLAB_WORKSPACES_DIR := $(CURDIR)/.leaklab/jupyter/lab-workspaces
export JUPYTER_PLATFORM_DIRS := 1
export IPYTHONDIR := $(CURDIR)/.leaklab/ipython
export MPLCONFIGDIR := $(CURDIR)/.leaklab/matplotlib
export LEAKLAB_ARTEFACTS := $(CURDIR)/.leaklab/runs
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help lab test e2e chinese hub notebooks check-notebooks translations bench bench-class bench-verdicts lint format clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "leaklab needs Python 3.11 or newer: $(PYTHON) is $$($(PYTHON) --version)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@# uv installs the same pinned packages about three times faster than pip (it downloads in parallel);
	@# where uv cannot (no wheel of it for this machine, a registry it cannot reach), pip does it instead.
	@echo "installing requirements.lock and leaklab into $(VENV)"
	@if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) \
	    && $(UV_INSTALL) -r requirements.lock && $(UV_INSTALL) --no-deps -e .; then :; \
	else echo "uv could not install the packages: pip installs them instead (a minute or two)"; \
	    $(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock \
	    && $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .; fi
	@# jsonschema's URI format checker (pulled in by jupyter-events) adds ~1 s to every Jupyter and
	@# nbgrader process and nothing here validates URIs: removed on purpose, `pip check` stays clean.
	$(BIN)/python -m pip uninstall --quiet -y rfc3987-syntax
	@mkdir -p .leaklab  # where IPython, Jupyter and matplotlib write (above): IPython warns if it is missing
	touch $(STAMP)

lab: $(STAMP) ## install everything, then open JupyterLab on your copy of the exercises (LAB_ARGS=--no-browser for headless; LEAKLAB_LANG=zh_CN for the course in Chinese)
ifeq ($(LEAKLAB_LANG),)
	@mkdir -p workspace
	@# Your copy: exercises that are new since last time are added, your own work is never overwritten.
	@for nb in exercises/*.ipynb; do [ -e "workspace/$${nb##*/}" ] || cp "$$nb" workspace/; done
	$(BIN)/jupyter lab --notebook-dir=workspace $(LAB_ARGS)
else
	@[ -d "exercises/$(LEAKLAB_LANG)" ] || { echo "LEAKLAB_LANG=$(LEAKLAB_LANG): the course has no such language; it has: $$(cd exercises && ls -d */ 2>/dev/null | tr -d / | tr '\n' ' ')(empty: English)"; exit 2; }
	@if [ "$(LEAKLAB_LANG)" = zh_CN ]; then $(MAKE) --no-print-directory chinese; fi
	@mkdir -p workspace/$(LEAKLAB_LANG) $(LANG_SETTINGS)/@jupyterlab/translation-extension
	@echo '{"locale": "$(LEAKLAB_LANG)"}' > $(LANG_SETTINGS)/@jupyterlab/translation-extension/plugin.jupyterlab-settings
	@for nb in exercises/$(LEAKLAB_LANG)/*.ipynb; do [ -e "workspace/$(LEAKLAB_LANG)/$${nb##*/}" ] || cp "$$nb" workspace/$(LEAKLAB_LANG)/; done
	JUPYTERLAB_SETTINGS_DIR=$(LANG_SETTINGS) $(BIN)/jupyter lab --notebook-dir=workspace/$(LEAKLAB_LANG) $(LAB_ARGS)
endif

test: $(STAMP) ## install what the tests need, then run the whole suite (the browser test last, as `make e2e`)
	$(BIN)/ruff check src tests grader
	$(BIN)/ruff format --check src tests grader
	@sh grader/i18n/cjk-font.sh || echo "(the test of the Chinese plots is skipped)"
	$(BIN)/python -m pytest -n 2 --ignore=tests/e2e --ignore=tests/hub
	@$(MAKE) --no-print-directory hub
	@$(MAKE) --no-print-directory e2e

e2e: $(STAMP) ## browser test: headless Chromium walks through lesson 01 in the lab, in English and in Chinese (screenshots: .leaklab/screenshots/)
	@# Installs Chromium with apt-get when run as root; otherwise, without one, it says "e2e skipped: <why>".
	@if sh tests/e2e/chromium.sh; then $(MAKE) --no-print-directory chinese && $(BIN)/python -m pytest tests/e2e; fi

chinese: $(STAMP) ## what the Chinese lab needs beyond the course: a CJK font for its plots (as root; else it says which) and JupyterLab's zh_CN language pack
	@sh grader/i18n/cjk-font.sh || true
	@$(BIN)/python -c 'import jupyterlab_language_pack_zh_CN' 2>/dev/null \
	    || $(UV_INSTALL) $(ZH_CN_PACK) || $(BIN)/python -m pip install --quiet $(ZH_CN_PACK)

hub: $(STAMP) ## JupyterHub test: a real hub, real users, release/fetch/submit/collect/autograde of lesson 01 (as root)
	@# Needs root, useradd and Node/npm (grader/hub/install-proxy.sh); otherwise it says "hub skipped: <why>".
	@if sh tests/hub/preflight.sh; then $(BIN)/python -m pytest tests/hub; fi

notebooks: $(STAMP) ## regenerate exercises/ and solutions/ from the lessons in notebooks/ (LESSONS="05_x" for some)
	$(BIN)/leaklab build $(LESSONS)

check-notebooks: $(STAMP) ## say whether exercises/ and solutions/ still match notebooks/
	$(BIN)/leaklab build --check

translations: $(STAMP) ## bring notebooks/locales/ in line with the English lessons: changed cells marked fuzzy, new ones untranslated (LANGS=xx to start a language)
	$(BIN)/python -m leaklab._translate $(LANGS)

bench: $(STAMP) ## the speed figures against their goals, into docs/benchmarks.md (~15 min; BENCH_ARGS="--quick" checks it in ~2, printing only)
	$(BIN)/python tests/benchmarks/bench.py $(BENCH_ARGS)

bench-class: $(STAMP) ## class grading at full size (40 students x 8 lessons, about an hour), and under load, into docs/benchmarks.md (CLASS_ARGS="--students 4": printed only)
	$(BIN)/python tests/benchmarks/bench_class.py $(CLASS_ARGS)

bench-verdicts: $(STAMP) ## every test answer graded 20 times by both graders beside 2 CPU burners: verdicts that never change (hours; VERDICT_ARGS="--rounds 2")
	$(BIN)/python tests/benchmarks/bench_verdicts.py $(VERDICT_ARGS)

lint: $(STAMP) ## ruff over the package, tests and grader config
	$(BIN)/ruff check src tests grader
	$(BIN)/ruff format --check src tests grader

format: $(STAMP) ## format the code with ruff
	$(BIN)/ruff format src tests grader

clean: ## remove run artefacts (captures, plots, grading folders)
	rm -rf .leaklab
