"""The one-shot Job that copies a model from Hugging Face into the model bucket.

The Hugging Face token stays in Secrets Manager: an init container reads it at run time through Pod
Identity into a memory-backed volume that lives only as long as the pod, so it never appears in a
template, a manifest or a log. Then the weights are downloaded (vLLM image: it carries
huggingface_hub) and uploaded with the AWS CLI.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from cdk8s_plus_30 import k8s
from constructs import Construct

from k8s.network_policies import dns_egress, https_egress, pod_identity_egress
from k8s.node_pools import POOL_LABEL
from k8s.pod_security import restricted_container, restricted_pod, runtime_identity_env
from k8s.vllm import VLLM_NO_TELEMETRY_ENV

_TOKEN_FILE = "/secrets/hf-token"
_WORK = "/models"


@dataclass(frozen=True)
class DownloadWiring:
    namespace: str
    service_account: str
    model: str
    destination_uri: str  # s3://bucket/prefix/model
    hf_token_secret_name: str
    aws_region: str
    tools_image: str
    python_image: str


def download_job_name(model: str) -> str:
    """Jobs are immutable: a new model gets a new Job name instead of a failed update."""
    return f"model-download-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


class ModelDownloadJob(Construct):
    def __init__(self, scope: Construct, id: str, *, wiring: DownloadWiring, labels: Mapping[str, str]) -> None:
        super().__init__(scope, id)
        selector = {"app.kubernetes.io/name": "model-download"}
        meta_labels = {**labels, **selector}
        local_dir = f"{_WORK}/model"
        restricted = restricted_container()
        env = [
            k8s.EnvVar(name="AWS_REGION", value=wiring.aws_region),
            *runtime_identity_env(home="/tmp"),
            k8s.EnvVar(name="HF_HOME", value="/tmp/huggingface"),
            # The download step runs in the vLLM image (huggingface_hub sends usage telemetry too).
            *VLLM_NO_TELEMETRY_ENV,
        ]
        mounts = [
            k8s.VolumeMount(name="secrets", mount_path="/secrets"),
            k8s.VolumeMount(name="models", mount_path=_WORK),
            k8s.VolumeMount(name="tmp", mount_path="/tmp"),
        ]
        fetch_token = (
            f"aws secretsmanager get-secret-value --secret-id {shlex.quote(wiring.hf_token_secret_name)} "
            f"--query SecretString --output text > {_TOKEN_FILE}"
        )
        download = (
            "from huggingface_hub import snapshot_download; "
            f"snapshot_download(repo_id={wiring.model!r}, local_dir={local_dir!r}, "
            f"token=open({_TOKEN_FILE!r}).read().strip(), ignore_patterns=['original/*'])"
        )
        upload = f"aws s3 sync {local_dir} {shlex.quote(wiring.destination_uri)} --only-show-errors"

        k8s.KubeServiceAccount(
            self,
            "service-account",
            metadata=k8s.ObjectMeta(name=wiring.service_account, namespace=wiring.namespace, labels=meta_labels),
            automount_service_account_token=False,
        )
        k8s.KubeJob(
            self,
            "job",
            metadata=k8s.ObjectMeta(
                name=download_job_name(wiring.model), namespace=wiring.namespace, labels=meta_labels
            ),
            spec=k8s.JobSpec(
                backoff_limit=2,
                active_deadline_seconds=2 * 3600,
                ttl_seconds_after_finished=24 * 3600,
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=meta_labels),
                    spec=k8s.PodSpec(
                        restart_policy="Never",
                        service_account_name=wiring.service_account,
                        automount_service_account_token=False,
                        security_context=restricted_pod(),
                        node_selector={POOL_LABEL: "cpu"},
                        init_containers=[
                            _step(
                                "fetch-token",
                                wiring.tools_image,
                                ["/bin/sh", "-c", fetch_token],
                                env,
                                mounts,
                                restricted,
                            ),
                            _step(
                                "download", wiring.python_image, ["python3", "-c", download], env, mounts, restricted
                            ),
                        ],
                        containers=[
                            _step("upload", wiring.tools_image, ["/bin/sh", "-c", upload], env, mounts, restricted)
                        ],
                        volumes=[
                            k8s.Volume(
                                name="secrets",
                                empty_dir=k8s.EmptyDirVolumeSource(
                                    medium="Memory", size_limit=k8s.Quantity.from_string("1Mi")
                                ),
                            ),
                            k8s.Volume(
                                name="models",
                                empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("80Gi")),
                            ),
                            k8s.Volume(
                                name="tmp",
                                empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("4Gi")),
                            ),
                        ],
                    ),
                ),
            ),
        )
        # Egress: DNS, HTTPS (Hugging Face, Secrets Manager, S3) and the Pod Identity agent; no ingress.
        k8s.KubeNetworkPolicy(
            self,
            "network-policy",
            metadata=k8s.ObjectMeta(name="model-download", namespace=wiring.namespace, labels=meta_labels),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=selector),
                policy_types=["Ingress", "Egress"],
                egress=[dns_egress(), https_egress(), pod_identity_egress()],
            ),
        )


def _step(
    name: str,
    image: str,
    command: list[str],
    env: list[k8s.EnvVar],
    mounts: list[k8s.VolumeMount],
    security: k8s.SecurityContext,
) -> k8s.Container:
    return k8s.Container(
        name=name,
        image=image,
        image_pull_policy="IfNotPresent",
        command=command,
        env=env,
        volume_mounts=mounts,
        security_context=security,
        resources=k8s.ResourceRequirements(
            requests={"cpu": k8s.Quantity.from_string("1"), "memory": k8s.Quantity.from_string("2Gi")},
            limits={"cpu": k8s.Quantity.from_string("2"), "memory": k8s.Quantity.from_string("4Gi")},
        ),
    )
