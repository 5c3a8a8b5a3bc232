"""The Grafana dashboards as synthesized (`<dist>/grafana/<name>.json`) and the series they need.

- `make synth` writes one JSON model per dashboard; each loads as JSON, has a uid and title, and every panel
  target has an `expr` and a `refId` unique within its panel.
- Every target's PromQL, with the template variables replaced by concrete values, passes `promtool`; so does
  the series selector of every `label_values(...)` variable. A variable a query uses must be declared (or be
  Grafana's built-in `$__rate_interval`), and every panel and target reads the `${datasource}` variable.
- Each required panel exists and shows the metric it must (names below, from FACTS.md and the exporters'
  sources); latency percentiles are `histogram_quantile` over `sum by (le) (rate(..._bucket[...]))`.
- A few panel queries are evaluated with `promtool test rules` on series labelled as kube-state-metrics and
  vLLM write them: nodes are counted by pool and capacity type, the queue per replica divides by the HPA's
  current replicas.
- The autoscaling dashboard's series exist: the Prometheus chart's kube-state-metrics subchart is on, Pod
  Security restricted, exports the two node labels, and Prometheus scrapes it.

Expected names and values are written here with their sources, never read from the module under test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s.metrics import kube_state_metrics_label
from tests.conftest import Synthesized, helm_values, resources_of
from tests.prometheus_harness import PromQLError, check_expressions, run_rule_tests

# Dashboards `make synth` writes (the gateway's only with `gateway.enabled`, on in dev and prod).
DASHBOARD_FILES = {"vllm.json", "gpu.json", "gateway.json", "autoscaling.json"}

# Concrete values for the template variables: a pod and a node name as Kubernetes would give them, and a rate
# window of four 5 s scrapes (what `$__rate_interval` gives at the platform's scrape interval, or more).
VARIABLE_VALUES = {
    "__rate_interval": "1m",
    "pod": "vllm-7d9f8c6b5-abcde",
    "gpu_node": "ip-10-0-12-34.us-west-2.compute.internal",
}
GRAFANA_BUILT_INS = {"__rate_interval"}
# `$name`, `${name}` or `${name:format}`, and the legacy `[[name]]` (Grafana docs, "Variable syntax").
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")

# Metric names (FACTS.md "vLLM metrics": V1 names, counters with `_total`, `vllm:inter_token_latency_seconds`,
# `vllm:kv_cache_usage_perc`; "GPU metrics": DCGM fields; "LiteLLM metrics": LiteLLM 1.102.1
# litellm/types/integrations/prometheus.py; kube-state-metrics v2.20.0 docs/metrics/: HPA, Deployment, Node).
REQUIRED_PANELS = [
    # (dashboard, a word of the panel title, the metric it must query)
    ("vllm", "queue", "vllm:num_requests_waiting"),
    ("vllm", "running", "vllm:num_requests_running"),
    ("vllm", "kv cache", "vllm:kv_cache_usage_perc"),
    ("vllm", "first token", "vllm:time_to_first_token_seconds_bucket"),
    ("vllm", "inter-token", "vllm:inter_token_latency_seconds_bucket"),
    ("vllm", "tokens per second", "vllm:generation_tokens_total"),
    ("vllm", "tokens per second", "vllm:prompt_tokens_total"),
    ("gpu", "utilisation", "DCGM_FI_DEV_GPU_UTIL"),
    ("gpu", "memory", "DCGM_FI_DEV_FB_USED"),
    ("gpu", "memory", "DCGM_FI_DEV_FB_FREE"),
    ("gpu", "xid", "DCGM_FI_DEV_XID_ERRORS"),
    ("gateway", "requests per second", "litellm_proxy_total_requests_metric_total"),
    ("gateway", "failed", "litellm_proxy_failed_requests_metric_total"),
    ("gateway", "latency", "litellm_request_total_latency_metric_bucket"),
    ("gateway", "deployment state", "litellm_deployment_state"),
    ("autoscaling", "vllm replicas", "kube_horizontalpodautoscaler_status_desired_replicas"),
    ("autoscaling", "vllm replicas", "kube_horizontalpodautoscaler_status_current_replicas"),
    ("autoscaling", "litellm replicas", "kube_horizontalpodautoscaler_status_desired_replicas"),
    ("autoscaling", "litellm replicas", "kube_horizontalpodautoscaler_status_current_replicas"),
    ("autoscaling", "nodes", "kube_node_labels"),
]
# Percentiles each latency panel shows, as `histogram_quantile` over the buckets summed by `le`.
PERCENTILE_PANELS = [
    ("vllm", "first token", "vllm:time_to_first_token_seconds_bucket"),
    ("vllm", "inter-token", "vllm:inter_token_latency_seconds_bucket"),
    ("gateway", "through the gateway", "litellm_request_total_latency_metric_bucket"),
]
PERCENTILES = ("0.5", "0.95", "0.99")
# kube-state-metrics names a Kubernetes label `label_` + the key with [^a-zA-Z0-9_] replaced by `_`
# (kube-state-metrics v2.20.0 internal/store/utils.go SanitizeLabelName).
NODE_POOL = "label_karpenter_sh_nodepool"
CAPACITY_TYPE = "label_karpenter_sh_capacity_type"
KSM_JOB = "kube-state-metrics"
# kube-state-metrics 2.20 CLI: `nodes=[label,...]` (docs/developer/cli-arguments.md); Karpenter's node labels.
NODE_LABELS_ALLOWLIST = ["nodes=[karpenter.sh/nodepool,karpenter.sh/capacity-type]"]


# --- loading -------------------------------------------------------------------------------------------------


def dashboard_dir(synth: Synthesized) -> Path:
    # `synthesize` writes dist/k8s (manifests_dir) and dist/grafana side by side, as `make synth` does.
    return synth.manifests_dir.parent / "grafana"


@pytest.fixture(scope="module")
def dashboards(dev: Synthesized) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(dashboard_dir(dev).glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that queries, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel["targets"]:
            yield panel, target


def variables_in(text: str) -> set[str]:
    return {next(g for g in match.groups() if g) for match in VARIABLE.finditer(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise AssertionError(f"no test value for the variable ${name} in {text}")
        return values[name]

    return VARIABLE.sub(value, text)


def recording_name(*parts: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", "_".join(parts))


def uses_metric(expr: str, metric: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(metric)}(?![\w:])", expr) is not None


def panels_titled(dashboard: dict[str, Any], word: str) -> list[dict[str, Any]]:
    return [p for p in panels(dashboard) if word in p["title"].lower()]


# --- the files -----------------------------------------------------------------------------------------------


def test_synth_writes_each_dashboard_as_json(dev: Synthesized, dashboards: dict[str, dict[str, Any]]) -> None:
    assert {path.name for path in dashboard_dir(dev).iterdir()} == DASHBOARD_FILES
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards.items():
        assert dashboard["title"], name
        assert dashboard["panels"], name
        # Grafana's dashboard JSON model: uid at most 40 characters; the environment in it keeps dev and prod apart.
        assert len(dashboard["uid"]) <= 40, dashboard["uid"]
        assert dashboard["uid"].startswith("genai-dev-"), dashboard["uid"]


def test_every_target_has_an_expr_and_a_ref_id_unique_in_its_panel(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        for panel in panels(dashboard):
            assert panel["targets"], (name, panel["title"])
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert all(ref_ids), (name, panel["title"])
            assert len(set(ref_ids)) == len(ref_ids), (name, panel["title"], ref_ids)
            assert all(t["expr"].strip() for t in panel["targets"]), (name, panel["title"])


def test_every_panel_and_target_reads_the_datasource_variable(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        (datasource,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert (datasource["name"], datasource["query"]) == ("datasource", "prometheus"), name
        for panel, target in targets(dashboard):
            for ref in (panel["datasource"], target["datasource"]):
                assert ref == {"type": "prometheus", "uid": "${datasource}"}, (name, panel["title"])


# --- PromQL --------------------------------------------------------------------------------------------------


def test_every_query_uses_only_declared_variables(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        declared = {v["name"] for v in dashboard["templating"]["list"]}
        for panel, target in targets(dashboard):
            unknown = variables_in(target["expr"]) - declared - GRAFANA_BUILT_INS
            assert not unknown, (name, panel["title"], unknown)


def test_every_query_passes_promtool_with_variables_substituted(dashboards: dict[str, dict[str, Any]]) -> None:
    exprs: dict[str, str] = {}
    for name, dashboard in dashboards.items():
        for index, (_, target) in enumerate(targets(dashboard)):
            expr = substitute(target["expr"], VARIABLE_VALUES)
            assert "$" not in expr, expr
            exprs[recording_name(name, str(index), target["refId"])] = expr
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                match = LABEL_VALUES.match(variable["query"])
                assert match, variable["query"]
                exprs[recording_name(name, "variable", variable["name"])] = match["selector"]
    assert len(exprs) > 40
    check_expressions(exprs)


def test_promtool_check_would_catch_a_broken_panel_query(dashboards: dict[str, dict[str, Any]]) -> None:
    _, target = next(targets(dashboards["vllm"]))
    broken = substitute(target["expr"], VARIABLE_VALUES).replace("(", "", 1)
    with pytest.raises(PromQLError):
        check_expressions({"broken": broken})


def test_every_variable_value_the_test_substitutes_is_used(dashboards: dict[str, dict[str, Any]]) -> None:
    used = {v for d in dashboards.values() for _, t in targets(d) for v in variables_in(t["expr"])}
    assert used == set(VARIABLE_VALUES)


# --- what the panels show -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dashboard", "word", "metric"), REQUIRED_PANELS)
def test_required_panel_shows_its_metric(
    dashboards: dict[str, dict[str, Any]], dashboard: str, word: str, metric: str
) -> None:
    candidates = panels_titled(dashboards[dashboard], word)
    assert candidates, f"no panel titled with {word!r} in {dashboard}"
    assert any(uses_metric(t["expr"], metric) for p in candidates for t in p["targets"]), (dashboard, word, metric)


@pytest.mark.parametrize(("dashboard", "word", "buckets"), PERCENTILE_PANELS)
def test_latency_panels_show_fleet_percentiles_over_summed_buckets(
    dashboards: dict[str, dict[str, Any]], dashboard: str, word: str, buckets: str
) -> None:
    (panel,) = panels_titled(dashboards[dashboard], word)
    exprs = [t["expr"] for t in panel["targets"]]
    for quantile in PERCENTILES:
        rate = rf"rate\({re.escape(buckets)}\{{[^{{}}]*\}}\[\$__rate_interval\]\)"
        pattern = rf"^histogram_quantile\({quantile}, sum by \(le\) \({rate}\)\)$"
        assert any(re.match(pattern, e) for e in exprs), (quantile, exprs)


def test_vllm_panels_select_the_served_model_in_the_inference_namespace_and_the_pod_variable(
    dev: Synthesized, dashboards: dict[str, dict[str, Any]]
) -> None:
    model = dev.config.inference.vllm.served_model_name
    for panel, target in targets(dashboards["vllm"]):
        for selector in re.findall(r"vllm:\w+\{([^}]*)\}", target["expr"]):
            assert selector == f'namespace="inference",model_name="{model}",pod=~"$pod"', panel["title"]
    (pod,) = [v for v in dashboards["vllm"]["templating"]["list"] if v["name"] == "pod"]
    assert (pod["multi"], pod["includeAll"], pod["allValue"]) == (True, True, ".+")


def test_gpu_panels_read_the_dcgm_job(dashboards: dict[str, dict[str, Any]]) -> None:
    for panel, target in targets(dashboards["gpu"]):
        for selector in re.findall(r"DCGM_\w+\{([^}]*)\}", target["expr"]):
            # The vLLM pods' GPUs are selected as the KEDA GPU trigger selects them (namespace and pod prefix).
            assert selector in ('job="dcgm-exporter",Hostname=~"$gpu_node"', 'namespace="inference",pod=~"vllm-.+"'), (
                panel["title"],
                selector,
            )


def test_gateway_panels_read_the_litellm_job(dashboards: dict[str, dict[str, Any]]) -> None:
    for panel, target in targets(dashboards["gateway"]):
        for selector in re.findall(r"litellm_\w+\{([^}]*)\}", target["expr"]):
            assert selector.startswith('job="litellm"'), (panel["title"], selector)


def test_replica_panels_select_the_hpas_keda_creates(dev: Synthesized, dashboards: dict[str, dict[str, Any]]) -> None:
    """The HPA names the panels select are those of the synthesized ScaledObjects."""
    for deployment, namespace, word in (
        ("vllm", "inference", "vllm replicas"),
        ("litellm", "gateway", "litellm replicas"),
    ):
        scaled_object = dev.one("ScaledObject", deployment)
        hpa = scaled_object["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"]
        assert hpa == f"keda-hpa-{deployment}"
        (panel,) = panels_titled(dashboards["autoscaling"], word)
        exprs = {t["legendFormat"]: t["expr"] for t in panel["targets"]}
        selector = f'job="{KSM_JOB}",namespace="{namespace}",horizontalpodautoscaler="{hpa}"'
        assert exprs["desired"] == f"kube_horizontalpodautoscaler_status_desired_replicas{{{selector}}}"
        assert exprs["current"] == f"kube_horizontalpodautoscaler_status_current_replicas{{{selector}}}"


def test_threshold_lines_follow_the_config(dev: Synthesized, dashboards: dict[str, dict[str, Any]]) -> None:
    scaling = dev.config.inference.autoscaling
    for dashboard, word, value in (
        ("vllm", "kv cache", scaling.kv_cache_usage),
        ("vllm", "queue", scaling.queue_depth_per_replica),
        ("vllm", "first token", dev.config.observability.alerts.ttft_slo_seconds),
        ("autoscaling", "ttft p95", scaling.ttft_p95_seconds),
    ):
        (panel,) = panels_titled(dashboards[dashboard], word)
        defaults = panel["fieldConfig"]["defaults"]
        assert [s["value"] for s in defaults["thresholds"]["steps"]] == [None, value], (dashboard, word)
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "dashed"


def test_deployment_state_panel_names_litellms_states(dashboards: dict[str, dict[str, Any]]) -> None:
    # LiteLLM: 0 healthy, 1 partial outage, 2 complete outage (FACTS.md; litellm_deployment_state's help text).
    (panel,) = panels_titled(dashboards["gateway"], "deployment state")
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    assert {k: v["text"] for k, v in mapping["options"].items()} == {"0": "healthy", "1": "partial outage", "2": "down"}


# --- queries evaluated on series as the exporters write them ------------------------------------------------


def _expr(dashboards: dict[str, dict[str, Any]], dashboard: str, word: str, legend: str | None = None) -> str:
    (panel,) = panels_titled(dashboards[dashboard], word)
    (target,) = [t for t in panel["targets"] if legend is None or t["legendFormat"] == legend]
    return substitute(target["expr"], {**VARIABLE_VALUES, "pod": ".+", "gpu_node": ".+"})


def test_nodes_are_counted_by_pool_and_capacity_type(dashboards: dict[str, dict[str, Any]]) -> None:
    node = f'kube_node_labels{{job="{KSM_JOB}",node="%s",{NODE_POOL}="%s",{CAPACITY_TYPE}="%s"}}'
    run_rule_tests(
        [{"record": "nodes", "expr": _expr(dashboards, "autoscaling", "nodes")}],
        [
            {
                "interval": "15s",
                "input_series": [
                    {"series": node % ("a", "gpu", "spot"), "values": "1x4"},
                    {"series": node % ("b", "gpu", "spot"), "values": "1x4"},
                    {"series": node % ("c", "gpu", "on-demand"), "values": "1x4"},
                    {"series": node % ("d", "system", "on-demand"), "values": "1x4"},
                ],
                "promql_expr_test": [
                    {
                        "expr": "nodes",
                        "eval_time": "30s",
                        "exp_samples": [
                            {"labels": f'nodes{{{NODE_POOL}="gpu",{CAPACITY_TYPE}="spot"}}', "value": 2},
                            {"labels": f'nodes{{{NODE_POOL}="gpu",{CAPACITY_TYPE}="on-demand"}}', "value": 1},
                            {"labels": f'nodes{{{NODE_POOL}="system",{CAPACITY_TYPE}="on-demand"}}', "value": 1},
                        ],
                    }
                ],
            }
        ],
    )


def test_queue_per_replica_divides_the_fleet_queue_by_current_replicas(
    dev: Synthesized, dashboards: dict[str, dict[str, Any]]
) -> None:
    model = dev.config.inference.vllm.served_model_name
    waiting = f'vllm:num_requests_waiting{{namespace="inference",model_name="{model}",pod="%s"}}'
    hpa = f'job="{KSM_JOB}",namespace="inference",horizontalpodautoscaler="keda-hpa-vllm"'
    current = f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}"
    run_rule_tests(
        [{"record": "queue_per_replica", "expr": _expr(dashboards, "autoscaling", "queue per replica")}],
        [
            {
                "interval": "15s",
                "input_series": [
                    {"series": waiting % "vllm-a", "values": "9x4"},
                    {"series": waiting % "vllm-b", "values": "3x4"},
                    {"series": waiting.replace(model, "other-model") % "x", "values": "100x4"},
                    {"series": current, "values": "2x4"},
                ],
                "promql_expr_test": [
                    {
                        "expr": "queue_per_replica",
                        "eval_time": "30s",
                        "exp_samples": [{"labels": "queue_per_replica", "value": 6}],
                    }
                ],
            }
        ],
    )


# --- kube-state-metrics: the series the autoscaling dashboard needs -----------------------------------------


def _prometheus_values(synth: Synthesized) -> dict[str, Any]:
    (chart,) = [
        r
        for r in resources_of(synth.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    return helm_values(chart["Properties"]["Values"])


def test_kube_state_metrics_runs_restricted_and_exports_the_node_pool_labels(dev: Synthesized) -> None:
    ksm = _prometheus_values(dev)["kube-state-metrics"]
    assert ksm["enabled"] is True
    assert ksm["metricLabelsAllowlist"] == NODE_LABELS_ALLOWLIST
    # Pod Security Standard `restricted` (kubernetes.io/docs/concepts/security/pod-security-standards).
    pod, container = ksm["securityContext"], ksm["containerSecurityContext"]
    assert pod["enabled"] is True
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True
    assert ksm["resources"]["requests"]["cpu"]
    assert ksm["resources"]["requests"]["memory"] == ksm["resources"]["limits"]["memory"]
    # The dashboards need HPAs, Deployments and nodes; the ClusterRole the chart derives from this list
    # must not read Secrets (the chart's default list has them).
    assert set(ksm["collectors"]) == {"horizontalpodautoscalers", "deployments", "nodes"}


def test_the_allowlisted_labels_are_those_the_node_panel_groups_by(dashboards: dict[str, dict[str, Any]]) -> None:
    assert kube_state_metrics_label("karpenter.sh/nodepool") == NODE_POOL
    assert kube_state_metrics_label("karpenter.sh/capacity-type") == CAPACITY_TYPE
    assert f"count by ({NODE_POOL}, {CAPACITY_TYPE}) (" in _expr(dashboards, "autoscaling", "nodes")


def test_prometheus_scrapes_kube_state_metrics_keeping_its_labels(dev: Synthesized) -> None:
    job = _prometheus_values(dev)["scrapeConfigs"][KSM_JOB]
    assert job.get("enabled", True)
    # Its series are about other objects (`namespace`, `deployment`, `node`): keep them, add no pod labels.
    assert job["honor_labels"] is True
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery == {"role": "pod", "namespaces": {"names": ["observability"]}}
    assert not [c for c in job["relabel_configs"] if c.get("target_label") in {"namespace", "pod"}]
