# fleetcam: `make run` starts the all-in-one local server, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
# checkov (tests/aws/test_security_scan.py) gets a venv of its own inside $(VENV): it pins
# boto3==1.35.49, networkx<2.7 and packaging<24, which would downgrade the project's own
CHECKOV_VERSION := 3.3.30
CHECKOV := $(VENV)/checkov/bin/checkov

.PHONY: run test install bench lint clean browser-deps console-vendor

# `make run` needs only the server's own dependencies; `make test` adds the test tools and the
# AWS extra (boto3, moto, cfn-lint, playwright, schemathesis...).
$(RUN_STAMP): pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,aws]'
	touch $(STAMP) $(RUN_STAMP)

$(CHECKOV): Makefile
	[ -x $(VENV)/checkov/bin/python ] || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet --upgrade pip
	$(VENV)/checkov/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(CHECKOV)

install: $(STAMP) $(CHECKOV)

SIMULATE ?= 2

run: $(RUN_STAMP)
	$(BIN)/fleetcam serve --simulate $(SIMULATE)

test: $(STAMP) $(CHECKOV) browser-deps
	$(BIN)/python -m pytest -q

# tests/pipeline/test_browser.py plays video in Debian's chromium (driven by Playwright) with
# hls.js from npm, tests/broker/test_browser_mqtt.py subscribes with mqtt.js from npm; installed
# once, skipped when present (CI runs as root with no stdin).
CHROMIUM := /usr/bin/chromium
HLS_JS := .cache/npm/node_modules/hls.js/dist/hls.min.js
MQTT_JS := .cache/npm/node_modules/mqtt/dist/mqtt.min.js
DVR_PLAYER := .cache/npm/flussonic-dvr-player/dist/FlussonicDvrPlayer.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser-deps:
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }
	@[ -f $(HLS_JS) ] || npm install --prefix .cache/npm --no-audit --no-fund --silent hls.js
	@[ -f $(MQTT_JS) ] || npm install --prefix .cache/npm --no-audit --no-fund --silent mqtt@5
	@# Flussonic's DVR player (tests/dvr_play/test_player.py): its bundle is self-contained, but one
	@# pinned dependency is not on npm, so `npm install` fails: fetch the package tarball instead.
	@[ -f $(DVR_PLAYER) ] || { mkdir -p .cache/npm/flussonic-dvr-player && \
	  npm pack --silent --pack-destination .cache/npm @flussonic/flussonic-dvr-player@26.5.6 && \
	  tar xzf .cache/npm/flussonic-flussonic-dvr-player-26.5.6.tgz -C .cache/npm/flussonic-dvr-player \
	    --strip-components=1; }

bench: $(STAMP)
	$(BIN)/python bench/media_list.py

clean:
	rm -rf $(VENV) .pytest_cache

# the console's browser libraries, vendored from npm (src/fleetcam/console/vendor/README.md)
console-vendor:
	npm install --prefix .cache/npm --no-audit --no-fund --silent hls.js@1.7.4 mqtt@5.16.0 \
	  qrcode-generator@1.5.2
	cp .cache/npm/node_modules/hls.js/dist/hls.min.js .cache/npm/node_modules/mqtt/dist/mqtt.min.js \
	  .cache/npm/node_modules/qrcode-generator/qrcode.js src/fleetcam/console/vendor/
