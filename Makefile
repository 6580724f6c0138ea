# The two commands a newcomer needs: `make run` and `make test`. Both install missing Debian
# packages first. Release builds go to build/release, sanitizer builds to build/debug.
JOBS ?= $(shell nproc)
SCENARIO ?= scenarios/france-1gw.yaml

.PHONY: run test bench lint format deps release debug clean

deps:
	@scripts/install-deps.sh

release: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

debug: deps
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

WORKLOAD ?= scenarios/france-1gw-workload.yaml
DAYS ?= 7
GRID ?= ../shared/data/grid/fr_2022_hourly_carbon_intensity_electricitymaps.csv

# The flagship: the france-1gw campus under its tenants' workload model for a simulated week.
run: release
	@build/release/apps/joule fleet $(SCENARIO)
	@build/release/apps/joule sim --scenario $(SCENARIO) --workload $(WORKLOAD) --days $(DAYS) --seed 1 \
	  $(if $(wildcard $(GRID)),--grid $(GRID)) --out out/sim/france-1gw

test: debug
	@scripts/check-format.sh
	@ctest --preset debug -j $(JOBS)
	@scripts/run-fuzzers.sh $(FUZZ_SECONDS)

FUZZ_SECONDS ?= 20

bench: release
	@scripts/run-benchmarks.sh build/release
	@scripts/power-sweep.sh build/release
	@scripts/failure-acceptance.sh build/release
	@WORKLOAD=busy scripts/failure-acceptance.sh build/release
	@scripts/server-bench.sh build/release
	@scripts/ha-bench.py build/release
	@scripts/history-bench.sh build/release
	@scripts/agent-latency.py build/release
	@scripts/node-refresh-bench.sh build/release
	@scripts/heartbeat-cost.sh build/release
	@scripts/parked-memory.py build/release
	@scripts/campus-bench.sh build/release
	@scripts/slurm-compare.sh build/release
	@scripts/run-fuzzers.sh 300

lint: debug
	@scripts/check-format.sh
	@scripts/run-clang-tidy.sh build/debug

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf build
