"""Every workload that asks for a node pool can get a node from it: some NodePool puts the asked-for label on
its nodes, and the pod tolerates that pool's taints. A pool without the label leaves the pod Pending forever
(Karpenter launches nodes only for pods some NodePool can satisfy). Dev's and prod's session synths.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Synthesized, download_job_documents

POOL_LABEL = "platform.genai/pool"
# Which pool each workload must land on (README, Inference tier and Gateway tier).
EXPECTED_POOLS = {("Deployment", "vllm"): {"gpu"}, ("Deployment", "litellm"): {"cpu"}}


def _asked_pools(pod: dict[str, Any]) -> set[str] | None:
    """The pool values a pod's nodeSelector or required node affinity admits (None: it asks for no pool)."""
    if POOL_LABEL in pod.get("nodeSelector", {}):
        return {pod["nodeSelector"][POOL_LABEL]}
    required = pod.get("affinity", {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return None
    admitted: set[str] = set()
    for term in required["nodeSelectorTerms"]:
        for expression in term.get("matchExpressions", []):
            if expression["key"] == POOL_LABEL:
                assert expression["operator"] == "In"
                admitted |= set(expression["values"])
    return admitted or None


def _tolerates(pod: dict[str, Any], taint: dict[str, str]) -> bool:
    """Kubernetes' rule: same key, Exists or an equal value, and the same effect or none."""
    return any(
        toleration.get("key") == taint["key"]
        and (toleration.get("operator") == "Exists" or toleration.get("value") == taint.get("value"))
        and toleration.get("effect") in (None, taint["effect"])
        for toleration in pod.get("tolerations", [])
    )


def _check_placement(pod: dict[str, Any], pools: dict[str, dict[str, Any]], what: str) -> set[str]:
    asked = _asked_pools(pod)
    assert asked is not None, f"{what} asks for no pool"
    matching = [
        name
        for name, template in pools.items()
        if template.get("metadata", {}).get("labels", {}).get(POOL_LABEL) in asked
    ]
    assert matching, f"{what}: no NodePool labels its nodes {POOL_LABEL} in {sorted(asked)}"
    for name in matching:
        for taint in pools[name]["spec"].get("taints", []):
            assert _tolerates(pod, taint), f"{what} does not tolerate pool {name}'s taint {taint}"
    return asked


def test_each_workload_lands_on_a_pool_that_labels_its_nodes_and_whose_taints_it_tolerates(
    dev: Synthesized, prod: Synthesized
) -> None:
    for synth in (dev, prod):
        pools = {p["metadata"]["name"]: p["spec"]["template"] for p in synth.find("NodePool")}
        found = {}
        for workload in synth.find("Deployment") + synth.find("Job"):
            pod = workload["spec"]["template"]["spec"]
            if _asked_pools(pod) is None:
                continue
            key = (workload["kind"], workload["metadata"]["name"])
            found[key] = _check_placement(pod, pools, str(key))
        assert found == EXPECTED_POOLS, synth.config.env_name


@pytest.fixture(scope="module")
def download_job() -> dict[str, Any]:
    (job,) = [doc for doc in download_job_documents() if doc["kind"] == "Job"]
    return job


def test_the_download_job_runs_on_the_cpu_pool(dev: Synthesized, download_job: dict[str, Any]) -> None:
    """Copying weights needs no accelerator: on a GPU node it would hold the GPU for the whole download."""
    pools = {p["metadata"]["name"]: p["spec"]["template"] for p in dev.find("NodePool")}
    assert _check_placement(download_job["spec"]["template"]["spec"], pools, "the download Job") == {"cpu"}
