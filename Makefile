# The README's two commands are `make demo` and `make test`; both install what they need.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint types unit test test-js bench bench-stock bench-webhooks bench-fanout bench-chat bench-scaleout bench-reconnect bench-reserve-ws bench-imports loadtest demo serve clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,load]"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

# The one test command (README, CI): lint, types, then every test on real Redis servers. The JS
# client's tests (clients/js) run inside `unit`, through tests/clients/test_js_client.py, in Node and Chromium.
test: lint types unit

# Only the JS client's tests (Node, Chromium and `npm pack`), against a real node.
test-js: install
	$(BIN)/pytest tests/clients/test_js_client.py

bench: bench-stock bench-fanout bench-webhooks bench-channels

bench-stock: install
	$(BIN)/python -m bench.stock

# 10,000 viewers on one node against the bare websockets.broadcast ceiling, reservations over
# WebSocket, a reconnect storm (docs/benchmarks.md). Scale it with ARGS, e.g. ARGS="--viewers 2000".
bench-fanout: install
	$(BIN)/python -m bench.fanout $(ARGS)

# Chat during a live drop: 10,000 viewers, 500 writers, 200 messages/s on one node, beside the
# bare websockets.broadcast ceiling (docs/benchmarks.md, "Chat"). Scale it with ARGS="--viewers 2000".
bench-chat: install
	$(BIN)/python -m bench.chat $(ARGS)

# Two nodes on a local 3-master Redis Cluster: one seq order, a burst, a node killed (docs/benchmarks.md).
# Signed webhooks at 2,000/s with 10 % duplicates, beside the server's own /healthz rate.
bench-webhooks: install
	$(BIN)/python -m bench.webhooks

# A drop pushed to four stand-in channels during a 10,000-reservation burst and platform sales (docs/benchmarks.md).
bench-channels: install
	$(BIN)/python -m bench.channels $(ARGS)

# Feed previews of 10,000 rows and checkout links, beside csv.reader / defusedxml / urlencode (docs/benchmarks.md).
bench-imports: install
	$(BIN)/python -m bench.imports $(ARGS)

# Reservations over WebSocket from a separate load process: sustained, burst, sold-out storm (docs/benchmarks.md).
bench-reserve-ws: install
	$(BIN)/python -m bench.reserve_ws $(ARGS)

bench-scaleout: install
	$(BIN)/python -m bench.scaleout

# One viewer reconnecting to a show nobody else watches: welcome latency vs a bare endpoint (docs/benchmarks.md).
bench-reconnect: install
	$(BIN)/python -m bench.reconnect

# A bounded flash sale through Locust on a local stack, then the verdict (docs/operations.md).
# Scale it with ARGS, e.g. make loadtest ARGS="--nodes 2 --viewers 600 --show-seconds 120".
loadtest: install
	$(BIN)/python -m loadtest.run $(ARGS)

# A seeded show with bot viewers; prints the control panel's and a viewer page's URLs.
demo: install
	$(BIN)/livedrop demo

serve: install
	$(BIN)/livedrop serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
