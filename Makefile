# The project's two commands: `make synth` and `make test`. Both install what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := synth

ENV ?= dev
# Extra CDK arguments, e.g. ARGS="-c cluster.kubernetes_version=1.36" (config overrides, see the README).
ARGS ?=
VENV := .venv
PY := $(VENV)/bin/python
# checkov pins packaging<24 and networkx<2.7, which clash with the project's: it gets its own venv.
CHECKOV_VENV := .venv-checkov
# The real LiteLLM proxy for the gateway tests and benchmark: ~120 packages, kept out of .venv.
LITELLM_VENV := .venv-litellm
PIP_FLAGS := --quiet --disable-pip-version-check --no-input
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: synth test deps test-deps lint typecheck validate unit clean bench-gateway bench-routing bench-loadtest mutation delivery-artifacts

# --- installation -------------------------------------------------------------------------------
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	bash scripts/ensure-prereqs.sh
	test -x $(PY) || python3 -m venv $(VENV)
	bash scripts/step.sh "installing the app's Python packages into $(VENV) (1-3 min on a fresh machine)" \
	  $(PY) -m pip install $(PIP_FLAGS) -r requirements.txt -r requirements-dev.txt 2> >(grep --line-buffered -v "^WARNING: Location" >&2)
	# The project itself, editable and without dependencies (requirements.txt pins them): .venv/bin/genai-ops.
	$(PY) -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation -e . 2> >(grep --line-buffered -v "^WARNING: Location" >&2)
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	bash scripts/ensure-prereqs.sh
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	bash scripts/step.sh "installing checkov into $(CHECKOV_VENV) (about 1 min)" \
	  $(CHECKOV_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-checkov.txt 2> >(grep --line-buffered -v "^WARNING: Location" >&2)
	touch $@

$(LITELLM_VENV)/.installed: requirements-litellm.txt
	bash scripts/ensure-prereqs.sh
	test -x $(LITELLM_VENV)/bin/python || python3 -m venv $(LITELLM_VENV)
	bash scripts/step.sh "installing the LiteLLM proxy into $(LITELLM_VENV) (1-2 min)" \
	  $(LITELLM_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-litellm.txt 2> >(grep --line-buffered -v "^WARNING: Location" >&2)
	touch $@

# promtool and prometheus (Debian's package) for the PromQL checks and the scaling-path test.
.tools-prometheus: scripts/ensure-prometheus.sh
	bash scripts/ensure-prometheus.sh
	touch $@

# bubblewrap, redis-server and openssl (Debian's packages) for the gateway's pod-contract test.
.tools-sandbox: scripts/ensure-sandbox.sh
	bash scripts/ensure-sandbox.sh
	touch $@

node_modules/.installed: package.json package-lock.json
	bash scripts/ensure-prereqs.sh
	bash scripts/step.sh "installing the pinned CDK CLI into node_modules" npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(VENV)/.installed node_modules/.installed

test-deps: deps $(CHECKOV_VENV)/.installed $(LITELLM_VENV)/.installed .tools-prometheus .tools-sandbox

ROUTER_VENV := .venv-router
$(ROUTER_VENV)/.installed: requirements-router.txt
	test -x $(ROUTER_VENV)/bin/python || python3 -m venv $(ROUTER_VENV)
	$(ROUTER_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-router.txt 2> >(grep --line-buffered -v "^WARNING: Location" >&2)
	touch $@

# The paths from LiteLLM to vLLM, measured (the connection setting the gateway uses vs the vLLM router).
bench-routing: test-deps $(ROUTER_VENV)/.installed
	$(PY) benchmarks/routing_evaluation.py

# The gateway's latency and throughput through the real proxy (a benchmark, not a test).
bench-gateway: test-deps
	$(PY) benchmarks/gateway_latency.py

# guidellm and aiperf beside `genai-ops loadtest` on the same local stub (dev-only tools, one venv each).
GUIDELLM_VENV := .venv-guidellm
AIPERF_VENV := .venv-aiperf
$(GUIDELLM_VENV)/.installed: requirements-guidellm.txt
	test -x $(GUIDELLM_VENV)/bin/python || python3 -m venv $(GUIDELLM_VENV)
	bash scripts/step.sh "installing guidellm into $(GUIDELLM_VENV) (several minutes: it brings PyTorch, about 6 GB)" \
	  $(GUIDELLM_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-guidellm.txt 2> >(grep --line-buffered -v "^WARNING: Location" >&2)
	touch $@

$(AIPERF_VENV)/.installed: requirements-aiperf.txt
	test -x $(AIPERF_VENV)/bin/python || python3 -m venv $(AIPERF_VENV)
	bash scripts/step.sh "installing aiperf into $(AIPERF_VENV) (1-3 min)" \
	  $(AIPERF_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-aiperf.txt 2> >(grep --line-buffered -v "^WARNING: Location" >&2)
	touch $@

# The load-test client's highest sustained streamed rate and its TTFT overhead, next to guidellm and aiperf
# (a benchmark, not a test). A tool that fails to install is reported by the script, which still runs ours.
bench-loadtest: deps
	-$(MAKE) --no-print-directory $(GUIDELLM_VENV)/.installed
	-$(MAKE) --no-print-directory $(AIPERF_VENV)/.installed
	$(PY) benchmarks/loadtest_client.py

# A seeded sample of the mutation audit (about a minute per mutant; an audit, not a test).
mutation: test-deps
	$(PY) scripts/mutation_audit.py --sample $${SAMPLE:-40} --seed $${SEED:-7}

# --- synth: every stack of $(ENV), cdk-nag enforced; manifests to dist/k8s/ ----------------------
# With ARGS="-c delivery.pipeline=true": the pipeline stack and every environment it deploys, each in a Stage
# (cdk.out/assembly-<env>/), their files under dist/<env>/ and the pipeline's report in dist/delivery/.
synth: deps
	rm -rf dist
	npx --no-install cdk synth --quiet -c env=$(ENV) $(ARGS)
	@echo "templates: $$(ls cdk.out/*.template.json cdk.out/assembly-*/*.template.json 2>/dev/null | tr '\n' ' ')"
	@for dir in dist dist/*/; do \
	  dir=$${dir%/}; test -d $$dir/k8s || continue; \
	  echo "manifests: $$(ls $$dir/k8s/*.yaml | tr '\n' ' ')"; \
	  echo "alerting rules: $$dir/prometheus/alerting_rules.yml"; \
	  echo "grafana dashboards: $$(ls $$dir/grafana/*.json | tr '\n' ' ')"; \
	done
	@echo "compliance reports: $$(ls dist/compliance-report.md dist/*/compliance-report.md 2>/dev/null | tr '\n' ' ')"

# After a pipeline synth: checkov's results for each environment's templates and manifests in dist/<env>/checkov/,
# next to its compliance report (the pipeline publishes dist/<env> as that stage's build artifact). Findings do not
# fail this target: `make test` enforces checkov on the templates and manifests.
delivery-artifacts: $(CHECKOV_VENV)/.installed
	@ls -d cdk.out/assembly-* > /dev/null 2>&1 || { \
	  echo 'delivery-artifacts: no Stage in cdk.out: run make synth ARGS="-c delivery.pipeline=true" first' >&2; exit 1; }
	for assembly in cdk.out/assembly-*; do \
	  env=$${assembly#cdk.out/assembly-}; \
	  CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --quiet --compact \
	    --skip-download --soft-fail --framework cloudformation kubernetes -d $$assembly -d dist/$$env/k8s \
	    -o cli -o json -o junitxml --output-file-path dist/$$env/checkov > /dev/null; \
	  echo "checkov results: $$(ls dist/$$env/checkov/* | tr '\n' ' ')"; \
	done

# --- test: everything that proves it ---------------------------------------------------------------
test: synth lint typecheck validate unit

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy

# The files `make synth` just wrote, checked by their ecosystems' own tools.
validate: synth
	$(VENV)/bin/cfn-lint --format parseable -- cdk.out/*.template.json
	$(VENV)/bin/kubernetes-validate --strict --quiet --no-warn \
	  --kubernetes-version "$$($(PY) -m platform_config cluster.kubernetes_version -c env=$(ENV))" dist/k8s/*.yaml
	$(PY) -m tests.crd_schemas dist/k8s/*.yaml

unit: test-deps
	$(VENV)/bin/pytest

clean:
	rm -rf cdk.out dist .pytest_cache .mypy_cache .ruff_cache .tools-prometheus .tools-sandbox
