"""The vLLM server as synthesized: a command line vLLM can parse, one set of labels that finds all of its
objects, and zone spread counted over its own replicas only. Dev's session synth; expected values written here.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Synthesized

# The server's selector labels and the label that marks every object the platform (prefix genai) made.
SERVER_LABELS = {
    "app.kubernetes.io/name": "vllm",
    "app.kubernetes.io/component": "inference-server",
    "app.kubernetes.io/part-of": "genai",
}
# vLLM's switches that take no value; every other flag takes exactly one.
SWITCHES = {"--enable-prefix-caching", "--no-enable-prefix-caching"}


def _pod(synth: Synthesized) -> dict[str, Any]:
    pod: dict[str, Any] = synth.one("Deployment", "vllm")["spec"]["template"]["spec"]
    return pod


def _parse(args: list[str]) -> tuple[dict[str, str], set[str]]:
    """`--flag value` pairs and bare switches; a flag followed by another flag has lost its value."""
    values: dict[str, str] = {}
    switches: set[str] = set()
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        assert flag.startswith("--"), f"{flag!r} follows no flag"
        if flag in SWITCHES:
            switches.add(flag)
            continue
        assert rest, f"{flag} has no value"
        assert not rest[0].startswith("--"), f"{flag} has no value: {rest[0]} follows it"
        values[flag] = rest.pop(0)
    return values, switches


def test_the_command_line_gives_every_flag_its_value_and_matches_the_resources(dev: Synthesized) -> None:
    (container,) = _pod(dev)["containers"]
    values, switches = _parse(container["args"])
    model = values.pop("--model")
    assert model.startswith("s3://")
    assert model.endswith("/models/meta-llama/Llama-3.1-8B-Instruct")
    assert values == {
        "--served-model-name": "llama-3.1-8b-instruct",
        "--load-format": "runai_streamer",
        "--max-model-len": "8192",
        "--max-num-seqs": "32",
        "--tensor-parallel-size": "1",
        "--port": "8000",
        "--gpu-memory-utilization": "0.9",
    }
    assert switches == {"--enable-prefix-caching"}
    # One tensor-parallel worker per GPU the pod gets, on the port the Service targets.
    assert values["--tensor-parallel-size"] == container["resources"]["limits"]["nvidia.com/gpu"]
    assert {"name": "http", "containerPort": int(values["--port"]), "protocol": "TCP"} in container["ports"]


def test_every_object_of_the_server_carries_its_labels(dev: Synthesized) -> None:
    """`kubectl get -l app.kubernetes.io/name=vllm` finds the whole server, its pods included."""
    objects = {
        kind: dev.one(kind, "vllm")
        for kind in ("ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy")
    }
    for kind, obj in objects.items():
        assert SERVER_LABELS.items() <= obj["metadata"]["labels"].items(), kind
        assert obj["metadata"]["namespace"] == "inference", kind
    template_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert SERVER_LABELS.items() <= template_labels.items()


def test_zone_spread_counts_only_the_servers_own_replicas(dev: Synthesized) -> None:
    """An empty selector would count every pod of the namespace (the download Job's too) against the skew."""
    deployment = dev.one("Deployment", "vllm")["spec"]
    (spread,) = deployment["template"]["spec"]["topologySpreadConstraints"]
    assert spread == {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        # GPU capacity in one zone beats no capacity: never refuse to scale out for balance.
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": deployment["selector"]["matchLabels"]},
    }
    assert deployment["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/component": "inference-server",
    }


def test_the_network_policy_applies_to_the_server_pods_only(dev: Synthesized) -> None:
    """An empty podSelector would open port 8000 to the gateway on every pod of the namespace (the download
    Job's too) and give them the server's egress. Egress: DNS, HTTPS (S3 through its gateway endpoint) and the
    Pod Identity agent (EKS User Guide, pod-id-how-it-works: 169.254.170.23), nothing else."""
    policy = dev.one("NetworkPolicy", "vllm")["spec"]
    assert policy["podSelector"] == {"matchLabels": dev.one("Deployment", "vllm")["spec"]["selector"]["matchLabels"]}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    egress = [(rule.get("to"), sorted((p["port"], p["protocol"]) for p in rule["ports"])) for rule in policy["egress"]]
    assert egress == [
        (None, [(53, "TCP"), (53, "UDP")]),
        (None, [(443, "TCP")]),
        ([{"ipBlock": {"cidr": "169.254.170.23/32"}}], [(80, "TCP")]),
    ]


# Where each library puts its cache unless told otherwise, by the variable that moves it: torch inductor,
# Triton, FlashInfer, CUDA's compute cache, vLLM, Hugging Face, and the XDG default the rest fall back to.
CACHE_VARIABLES = (
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "FLASHINFER_WORKSPACE_BASE",
    "CUDA_CACHE_PATH",
    "VLLM_CACHE_ROOT",
    "HF_HOME",
    "XDG_CACHE_HOME",
)


def test_every_cache_lives_on_the_node_local_cache_volume_not_on_tmp(dev: Synthesized) -> None:
    """README, vLLM: the caches point at the node-local /cache volume; the 2 GiB /tmp (HOME, and the default
    of torch inductor and FlashInfer) would get the pod evicted when a compile cache fills it."""
    pod = _pod(dev)
    (container,) = pod["containers"]
    (cache_mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/cache"]
    (cache,) = [v for v in pod["volumes"] if v["name"] == cache_mount["name"]]
    assert cache["emptyDir"] == {"sizeLimit": "50Gi"}
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    for name in CACHE_VARIABLES:
        assert env.get(name, "").startswith("/cache"), f"{name}={env.get(name)!r}"
