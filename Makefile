# Two commands on a fresh machine: `make run` (the whole system) and `make test` (the suite).
# Each installs what it needs first; installing again with unchanged requirements does nothing.
SHELL := /bin/bash
export RASA_TELEMETRY_ENABLED := false
PY := .venv/bin/python

.PHONY: setup browser haproxy run run-cluster test test-cluster test-conversations train lint bench-nlu bench-load bench-widget clean bench-redaction bench-ops

setup:
	@bash scripts/setup_envs.sh all

run: setup
	SUPPORTBOT_DEMO=$${SUPPORTBOT_DEMO:-true} $(PY) server.py

# The widget's browser test drives Debian's Chromium (apt, no browser download), with a CJK font so
# that its review screenshots show the Chinese text; nothing is installed when both are present.
browser:
	@{ [ -x /usr/bin/chromium ] && dpkg -s fonts-wqy-zenhei >/dev/null 2>&1; } || { \
	  echo "[setup] installing chromium and fonts-wqy-zenhei (apt) for the widget's browser test"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; }

test: setup browser haproxy
	$(PY) -m pytest -q -rs

# The local cluster's load balancer (issue 16): Debian's HAProxy; nothing is installed when present.
haproxy:
	@[ -x /usr/sbin/haproxy ] || { \
	  echo "[setup] installing haproxy (apt) for the local cluster"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy >/dev/null; }

# Several replicas on this machine: GATEWAYS gateways and RASA Rasa servers behind HAProxy (:8000,
# Rasa :5005), on the PostgreSQL and Redis running here (README "Running several replicas").
# e.g. make run-cluster GATEWAYS=3 RASA=2 ARGS="--keep-data"
GATEWAYS ?= 2
RASA ?= 2
run-cluster: setup haproxy
	SUPPORTBOT_DEMO=$${SUPPORTBOT_DEMO:-true} nice -n 5 $(PY) -m cluster run --gateways $(GATEWAYS) --rasa $(RASA) $(ARGS)

# 2 gateways + 2 Rasa behind HAProxy: the scenario suite, and a load with a gateway and a Rasa
# killed (SIGKILL) mid-run, and a model promoted and rolled back under load (tests/cluster; not part of
# `make test`). About 10 minutes on two cores.
test-cluster: setup haproxy
	nice -n 5 $(PY) -m pytest -q -rs -s -p no:cacheprovider tests/cluster

# Conversation scenarios (tests/scenarios) end to end; starts its own system unless ARGS has --url.
# e.g. make test-conversations ARGS="--language zh --junit reports/scenarios.xml"
test-conversations: setup
	$(PY) -m scenarios test-conversations $(ARGS)

train: setup
	$(PY) -m bot.training

lint: setup
	.venv/bin/ruff check .

bench-nlu: setup
	.venv-rasa/bin/python -m bench.nlu --dataset shipped
	.venv-rasa/bin/python -m bench.nlu --dataset clinc150 --shots 10 --compare-default

bench-load: setup
	$(PY) -m bench.load

bench-widget: setup
	$(PY) -m bench.widget

# Support ops: PII redaction precision/recall on bench/redaction (seconds), and retraining +
# promotion under load (starts the whole system, trains the shipped data: many minutes).
bench-redaction: setup
	$(PY) -m bench.redaction --write-results

bench-ops: setup
	$(PY) -m bench.ops --write-results

clean:
	rm -rf data models .pytest_cache
