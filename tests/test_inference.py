"""The inference tier as synthesized: node pools, the vLLM server, its ScaledObject, and how they fit
the cold-start budget and the scaling-reaction requirement."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from k8s.autoscaling import queue_reaction_bound
from tests.conftest import Synthesized, helm_values, resources_of

GPU = "nvidia.com/gpu"


# Auto Mode replaces every node after at most 21 days (EKS User Guide, automode; FACTS.md).
AUTO_MODE_MAX_NODE_LIFETIME_HOURS = 21 * 24
# The cold-start budget in the README: weights 30 s + engine 90 s in the container; plus node launch 90 s
# and image pull 90 s from a scale-out decision (sources in platform_config/cold_start.py and FACTS.md).
COLD_START_IN_CONTAINER_SECONDS = 30 + 90
COLD_START_TOTAL_SECONDS = 90 + 90 + 30 + 90
# The inference issue's requirement: a queue breach reaches the HPA within 30 s in the worst case.
REACTION_TARGET_S = 30


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def _requirement(pool: dict[str, Any], key: str) -> list[str]:
    (req,) = [r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == key]
    values: list[str] = req["values"]
    return values


def _vllm_container(synth: Synthesized) -> dict[str, Any]:
    (container,) = synth.one("Deployment", "vllm")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _helm_values(synth: Synthesized, stack: str, chart: str) -> dict[str, Any]:
    (resource,) = [
        r
        for r in resources_of(synth.stack_json(stack), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == chart
    ]
    values: dict[str, Any] = helm_values(resource["Properties"]["Values"])
    return values


# --- node pools ----------------------------------------------------------------------------------


def test_three_pools_each_with_its_node_class(dev: Synthesized) -> None:
    pools = {p["metadata"]["name"]: p for p in dev.find("NodePool")}
    classes = {c["metadata"]["name"]: c for c in dev.find("NodeClass")}
    assert set(pools) == set(classes) == {"gpu", "neuron", "cpu"}
    for name, pool in pools.items():
        assert pool["spec"]["template"]["spec"]["nodeClassRef"] == {
            "group": "eks.amazonaws.com",
            "kind": "NodeClass",
            "name": name,
        }
        spec = classes[name]["spec"]
        assert spec["role"] == "genai-dev-auto-mode-node"
        assert spec["subnetSelectorTerms"] == [{"tags": {"platform.genai/node-subnets": "genai-dev"}}]
        assert spec["securityGroupSelectorTerms"] == [{"tags": {"kubernetes.io/cluster/genai-dev": "owned"}}]
        assert spec["ephemeralStorage"]["kmsKeyID"].startswith("<deploy-time ")
        assert "NodeVolumes" in spec["ephemeralStorage"]["kmsKeyID"]


def test_gpu_pool(dev: Synthesized, prod: Synthesized) -> None:
    gpu = dev.one("NodePool", "gpu")
    spec = gpu["spec"]
    assert _requirement(gpu, "eks.amazonaws.com/instance-family") == ["g6", "g6e", "g5"]
    assert _requirement(gpu, "karpenter.sh/capacity-type") == ["spot", "on-demand"]
    assert _requirement(prod.one("NodePool", "gpu"), "karpenter.sh/capacity-type") == ["on-demand"]
    assert spec["template"]["spec"]["taints"] == [{"key": GPU, "effect": "NoSchedule"}]
    assert spec["limits"] == {GPU: "8"}
    # Only empty GPU nodes are consolidated: moving a serving replica costs a cold start of capacity.
    assert spec["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert spec["disruption"]["budgets"] == [{"nodes": "1"}]
    # A drain blocked by the vLLM PDB waits at most a day, and node lifetime stays within Auto Mode's 21 days.
    assert spec["template"]["spec"]["terminationGracePeriod"] == "24h"
    lifetime = _seconds(spec["template"]["spec"]["expireAfter"]) + _seconds("24h")
    assert lifetime <= AUTO_MODE_MAX_NODE_LIFETIME_HOURS * 3600
    assert _seconds(spec["template"]["spec"]["expireAfter"]) <= AUTO_MODE_MAX_NODE_LIFETIME_HOURS * 3600
    assert dev.one("NodeClass", "gpu")["spec"]["ephemeralStorage"]["size"] == "200Gi"


def test_neuron_and_cpu_pools(dev: Synthesized) -> None:
    neuron = dev.one("NodePool", "neuron")
    assert _requirement(neuron, "eks.amazonaws.com/instance-family") == ["inf2", "trn1", "trn2"]
    assert neuron["spec"]["template"]["spec"]["taints"] == [{"key": "aws.amazon.com/neuron", "effect": "NoSchedule"}]
    assert neuron["spec"]["limits"] == {"aws.amazon.com/neuron": "16"}
    assert neuron["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    cpu = dev.one("NodePool", "cpu")
    assert cpu["spec"]["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert _requirement(cpu, "karpenter.sh/capacity-type") == ["spot", "on-demand"]
    assert "taints" not in cpu["spec"]["template"]["spec"]
    assert cpu["spec"]["limits"] == {"cpu": "64", "memory": "256Gi"}


# --- vLLM server ---------------------------------------------------------------------------------


def test_vllm_deployment_runs_on_the_gpu_pool_with_its_gpu(dev: Synthesized) -> None:
    deployment = dev.one("Deployment", "vllm")
    assert "replicas" not in deployment["spec"], "KEDA's HPA owns the replica count"
    pod = deployment["spec"]["template"]["spec"]
    container = _vllm_container(dev)
    assert container["resources"]["requests"][GPU] == "1"
    assert container["resources"]["limits"][GPU] == "1"
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "platform.genai/pool", "operator": "In", "values": ["gpu"]}]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"


def test_vllm_image_pinned_by_digest_and_args_from_config(dev: Synthesized) -> None:
    container = _vllm_container(dev)
    assert "@sha256:" in container["image"]
    args = container["args"]
    vllm = dev.config.inference.vllm

    def arg(flag: str) -> str:
        return str(args[args.index(flag) + 1])

    assert arg("--load-format") == "runai_streamer"
    assert arg("--model").startswith("s3://")
    assert arg("--model").endswith("/models/meta-llama/Llama-3.1-8B-Instruct")
    assert arg("--served-model-name") == vllm.served_model_name
    assert arg("--max-model-len") == str(vllm.max_model_len)
    assert arg("--gpu-memory-utilization") == str(vllm.gpu_memory_utilization)
    assert arg("--max-num-seqs") == str(vllm.max_num_seqs)
    assert "--enable-prefix-caching" in args
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["RUNAI_STREAMER_CONCURRENCY"] == "32"
    assert env["RUNAI_STREAMER_MEMORY_LIMIT"] == str(4 * 2**30)


def test_vllm_is_pod_security_restricted(dev: Synthesized) -> None:
    pod = dev.one("Deployment", "vllm")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = _vllm_container(dev)["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["shm"]["emptyDir"]["medium"] == "Memory"
    assert {m["mountPath"] for m in _vllm_container(dev)["volumeMounts"]} == {"/dev/shm", "/cache", "/tmp"}
    assert not any("hostPath" in v for v in pod["volumes"])


def _allowed_disruptions(pdb: dict[str, Any], ready: int) -> int:
    """What the Kubernetes disruption controller allows for a Deployment of `ready` healthy replicas
    (kubernetes.io docs, "Specifying a Disruption Budget": integer minAvailable / maxUnavailable)."""
    if "minAvailable" in pdb:
        return max(0, ready - int(pdb["minAvailable"]))
    return max(0, int(pdb["maxUnavailable"]))


def test_graceful_drain(dev: Synthesized) -> None:
    pod = dev.one("Deployment", "vllm")["spec"]["template"]["spec"]
    vllm = dev.config.inference.vllm
    pre_stop = _vllm_container(dev)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop == vllm.pre_stop_delay_seconds
    assert pod["terminationGracePeriodSeconds"] > pre_stop + vllm.longest_request_seconds


def test_service_pdb_and_network_policy(dev: Synthesized) -> None:
    service = dev.one("Service", "vllm")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]
    pdb = dev.one("PodDisruptionBudget", "vllm")["spec"]
    assert pdb["selector"]["matchLabels"] == dev.one("Deployment", "vllm")["spec"]["selector"]["matchLabels"]
    # The last Ready replica is never evicted; with two, one may go; an unready one may always go.
    assert [_allowed_disruptions(pdb, ready) for ready in (1, 2, 3)] == [0, 1, 2]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    policy = dev.one("NetworkPolicy", "vllm")["spec"]
    sources = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in policy["ingress"][0]["from"]
    ]
    assert sources == ["gateway", "observability"]
    assert policy["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]
    (deny,) = [p for p in dev.find("NetworkPolicy", "default-deny") if p["metadata"]["namespace"] == "inference"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_vllm_pod_identity_reads_only_the_model_prefix(dev: Synthesized) -> None:
    data = dev.stack_json("data")
    (association,) = resources_of(data, "AWS::EKS::PodIdentityAssociation").values()
    assert association["Properties"]["Namespace"] == "inference"
    assert association["Properties"]["ServiceAccount"] == "vllm"
    (policy,) = [
        p
        for p in resources_of(data, "AWS::IAM::ManagedPolicy").values()
        if "VllmIdentity" in p["Metadata"]["aws:cdk:path"]
    ]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in [s["Action"]]}
    assert actions == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    assert dev.one("ServiceAccount", "vllm")["metadata"]["namespace"] == "inference"


def test_model_bucket_is_kms_encrypted_tls_only_and_private(dev: Synthesized) -> None:
    data = dev.stack_json("data")
    buckets = resources_of(data, "AWS::S3::Bucket")
    (models,) = [b for b in buckets.values() if "ModelStore/Models/" in b["Metadata"]["aws:cdk:path"]]
    rule = models["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True
    assert models["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    policies = json.dumps(list(resources_of(data, "AWS::S3::BucketPolicy").values()))
    assert '"aws:SecureTransport": "false"' in policies


# --- autoscaling -----------------------------------------------------------------------------------


def test_one_scaled_object_with_four_signals_and_no_competing_hpa(each_env: Synthesized) -> None:
    scaled = each_env.one("ScaledObject", "vllm")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"}
    triggers = {t["name"]: t for t in spec["triggers"]}
    assert set(triggers) == {"queue-depth", "kv-cache", "ttft-p95", "generation-tokens"}
    assert triggers["queue-depth"]["metricType"] == "AverageValue"
    assert "vllm:num_requests_waiting" in triggers["queue-depth"]["metadata"]["query"]
    assert "vllm:kv_cache_usage_perc" in triggers["kv-cache"]["metadata"]["query"]
    assert "vllm:time_to_first_token_seconds_bucket" in triggers["ttft-p95"]["metadata"]["query"]
    assert "rate(vllm:generation_tokens_total" in triggers["generation-tokens"]["metadata"]["query"]
    for trigger in triggers.values():
        assert trigger["metadata"]["serverAddress"] == "http://prometheus-server.observability.svc.cluster.local:80"
    assert spec["fallback"] == {
        "failureThreshold": 3,
        "replicas": each_env.config.inference.autoscaling.fallback_replicas,
    }
    targets = [d["spec"]["scaleTargetRef"]["name"] for d in each_env.find("HorizontalPodAutoscaler")]
    assert "vllm" not in targets


def test_dcgm_trigger_is_opt_in(synth_in: Any) -> None:
    synth = synth_in("dev", **{"inference.autoscaling.dcgm_gpu_utilization_trigger": "true"})
    (trigger,) = [t for t in synth.one("ScaledObject", "vllm")["spec"]["triggers"] if t["name"] == "gpu-utilization"]
    assert trigger["metadata"]["query"].startswith("avg(DCGM_FI_DEV_GPU_UTIL{")
    assert trigger["metadata"]["threshold"] == "90"


def test_hpa_behaviour_fast_up_slow_down(dev: Synthesized) -> None:
    behavior = dev.one("ScaledObject", "vllm")["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]


def test_cold_start_budget_is_respected_by_probe_stabilization_and_consolidation(each_env: Synthesized) -> None:
    container = _vllm_container(each_env)
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= COLD_START_IN_CONTAINER_SECONDS
    behavior = each_env.one("ScaledObject", "vllm")["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= COLD_START_TOTAL_SECONDS
    consolidate = each_env.one("NodePool", "gpu")["spec"]["disruption"]["consolidateAfter"]
    assert _seconds(consolidate) >= COLD_START_TOTAL_SECONDS
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"


def test_scaling_reaction_bound_from_synthesized_objects(each_env: Synthesized) -> None:
    values = _helm_values(each_env, "observability", "prometheus")
    scrape_interval = _seconds(values["scrapeConfigs"]["vllm"]["scrape_interval"])
    bound = queue_reaction_bound(each_env.one("ScaledObject", "vllm"), scrape_interval)
    assert bound.metric_read == 0, "useCachedMetrics must stay off on the queue trigger"
    assert bound.total <= REACTION_TARGET_S, bound


def test_reaction_bound_counts_caching_and_stabilization(dev: Synthesized) -> None:
    scaled = json.loads(json.dumps(dev.one("ScaledObject", "vllm")))
    (queue,) = [t for t in scaled["spec"]["triggers"] if t["name"] == "queue-depth"]
    queue["useCachedMetrics"] = True
    scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] = (
        30
    )
    bound = queue_reaction_bound(scaled, 5)
    assert bound.total == 5 + scaled["spec"]["pollingInterval"] + 15 + 30 + 1
    assert bound.total > REACTION_TARGET_S


# --- the signal path --------------------------------------------------------------------------------


def test_prometheus_scrapes_vllm_and_dcgm_every_ten_seconds_or_less(dev: Synthesized) -> None:
    values = _helm_values(dev, "observability", "prometheus")
    jobs = {name: job for name, job in values["scrapeConfigs"].items() if job.get("enabled", True)}
    assert set(jobs) == {"vllm", "dcgm-exporter", "litellm", "kube-state-metrics"}
    for job in jobs.values():
        assert _seconds(job["scrape_interval"]) <= 10
    assert jobs["dcgm-exporter"]["honor_labels"] is True
    server = values["server"]
    assert server["persistentVolume"]["storageClass"] == "gp3-encrypted"
    assert server["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    assert server["podDisruptionBudget"]["enabled"] is True
    assert values["prometheus-node-exporter"] == {"enabled": False}


def test_exactly_one_dcgm_exporter_per_gpu_node(dev: Synthesized) -> None:
    dcgm = _helm_values(dev, "observability", "dcgm-exporter")
    assert dcgm["nodeSelector"] == {"eks.amazonaws.com/instance-gpu-manufacturer": "nvidia"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in dcgm["tolerations"]
    (addon,) = [
        a
        for a in resources_of(dev.template_json(), "AWS::EKS::Addon").values()
        if a["Properties"]["AddonName"] == "amazon-cloudwatch-observability"
    ]
    assert json.loads(addon["Properties"]["ConfigurationValues"]) == {"dcgmExporter": {"enabled": False}}


def test_keda_chart_pinned_with_restricted_security_and_pod_identity(dev: Synthesized) -> None:
    (chart,) = [
        r
        for r in resources_of(dev.stack_json("inference"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "keda"
    ]
    assert chart["Properties"]["Version"] == "2.20.2"
    assert chart["Properties"]["Namespace"] == "keda"
    values = helm_values(chart["Properties"]["Values"])
    for component in ("operator", "metricServer", "webhooks"):
        assert values["securityContext"][component]["capabilities"] == {"drop": ["ALL"]}
        assert values["podDisruptionBudget"][component] == {"maxUnavailable": 1}
        assert "requests" in values["resources"][component]
    associations = [
        a["Properties"] for a in resources_of(dev.stack_json("inference"), "AWS::EKS::PodIdentityAssociation").values()
    ]
    assert {"Namespace": "keda", "ServiceAccount": "keda-operator"}.items() <= associations[0].items()


# --- model download ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_download(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from tests.conftest import synthesize

    return synthesize(
        tmp_path_factory.mktemp("download"),
        "dev",
        **{
            "inference.model_store.download_job": "true",
            "inference.model_store.hf_token_secret_name": "genai/hf-token",
        },
    )


def test_download_job_reads_the_token_at_run_time_only(with_download: Synthesized) -> None:
    (job,) = with_download.find("Job")
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-token", "download"]
    text = json.dumps(job)
    assert "genai/hf-token" in text  # the secret's name, never its value
    assert "secretKeyRef" not in text
    (secrets,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
    assert secrets["emptyDir"]["medium"] == "Memory"
    data = with_download.stack_json("data")
    accounts = {
        a["Properties"]["ServiceAccount"] for a in resources_of(data, "AWS::EKS::PodIdentityAssociation").values()
    }
    assert accounts == {"vllm", "model-downloader"}
    assert "secretsmanager:GetSecretValue" in json.dumps(data)


def test_download_job_gives_up_and_cleans_up_in_bounded_time(with_download: Synthesized) -> None:
    (job,) = with_download.find("Job")
    # Two retries, two hours for a 16 GB copy, and the finished Job (with its logs) kept for a day so a
    # person can read why it failed before Kubernetes deletes it.
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (2, 7200)
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_vllm_scrape_job_keeps_only_the_vllm_pods_api_port(dev: Synthesized) -> None:
    scrape = next(
        helm_values(r["Properties"]["Values"])["scrapeConfigs"]["vllm"]
        for r in resources_of(dev.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    )
    keeps = [r for r in scrape["relabel_configs"] if r.get("action") == "keep"]
    assert keeps == [
        {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": "vllm", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http", "action": "keep"},
    ]


def test_no_secret_value_in_templates_or_manifests(with_download: Synthesized, dev: Synthesized) -> None:
    for synth in (with_download, dev):
        for path in synth.outdir.glob("*.template.json"):
            template = json.loads(path.read_text())
            for secret in resources_of(template, "AWS::SecretsManager::Secret").values():
                # Generated by Secrets Manager at deploy time, never given a value in the template.
                assert "SecretString" not in secret["Properties"], path
                assert "GenerateSecretString" in secret["Properties"], path
            text = path.read_text()
            # The only dynamic reference: the Valkey user's password, resolved by CloudFormation itself.
            assert text.count("{{resolve:secretsmanager:") == text.count('"Type": "password"')
        texts = [p.read_text() for p in synth.outdir.glob("*.template.json")]
        texts += [p.read_text() for p in synth.manifests_dir.glob("*.yaml")]
        for text in texts:
            # Hugging Face tokens and LiteLLM keys by their published shapes.
            assert not re.search(r"hf_[A-Za-z0-9]{30,}", text)
            assert not re.search(r"sk-[A-Za-z0-9_-]{20,}", text)


def test_neuron_variant_behind_the_config_switch(synth_in: Any) -> None:
    image = "public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.9.1@sha256:" + "a" * 64  # a test value
    synth = synth_in("dev", **{"inference.vllm.accelerator": "neuron", "inference.vllm.neuron_image": image})
    pod = synth.one("Deployment", "vllm")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == image
    assert container["resources"]["limits"] == {"memory": "12Gi", "aws.amazon.com/neuron": "1"}
    assert GPU not in container["resources"]["requests"]
    assert "--gpu-memory-utilization" not in container["args"]
    assert {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"][0]["values"] == ["neuron"]


def test_prometheus_chart_default_jobs_are_all_turned_off(dev: Synthesized) -> None:
    """Names from the chart's values.yaml (prometheus-community/helm-charts, charts/prometheus 29.27.0)."""
    values = _helm_values(dev, "observability", "prometheus")["scrapeConfigs"]
    chart_defaults = {
        "kubernetes-api-servers",
        "kubernetes-nodes",
        "kubernetes-nodes-cadvisor",
        "kubernetes-service-endpoints",
        "kubernetes-service-endpoints-slow",
        "prometheus-pushgateway",
        "kubernetes-services",
        "kubernetes-pods",
        "kubernetes-pods-slow",
    }
    assert {name for name, job in values.items() if job == {"enabled": False}} == chart_defaults


def test_downloader_may_read_the_named_token_secret(with_download: Synthesized) -> None:
    (policy,) = [
        p
        for p in resources_of(with_download.stack_json("data"), "AWS::IAM::ManagedPolicy").values()
        if "DownloaderIdentity" in p["Metadata"]["aws:cdk:path"]
    ]
    (statement,) = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "secretsmanager:GetSecretValue"
    ]
    # A secret imported by name has a partial ARN: only the -?????? suffix matches the real one.
    assert json.dumps(statement["Resource"]).endswith(':secret:genai/hf-token-??????"]]}')
