"""Checks of what schemas accept but AWS or a runtime refuses, over the synthesized whole.

Each function takes the synthesized templates (stack name -> template) and manifests (every object in
`dist/k8s/`) and returns what is missing, as sentences; an empty list means the class of mistake is absent.
`tests/test_deployability.py` runs them on dev and prod and on mutated copies, to show each one fails on the
defect it guards. The rules and their sources:

- IAM implied by fields: a NodeClass or StorageClass naming a KMS key needs the auto-kms key policy for the
  cluster role; a NodeClass, IngressClassParams or StorageClass carrying user tags needs the tag policy on the
  cluster role (EKS User Guide, auto-kms; auto-learn-iam "Custom AWS tags for EKS Auto resources"); a
  NodeClass role other than the cluster's node role needs its own EC2 access entry; a Pod Identity role must
  trust pods.eks.amazonaws.com with sts:AssumeRole and sts:TagSession.
- Container runtime contract: a container running as a UID its image does not list sets USER and HOME, has a
  read-only root, keeps every path it writes under an emptyDir, and turns its image's telemetry off.
- Second switches: NetworkPolicies need `kube-system/amazon-vpc-cni` with enable-network-policy-controller
  and a NodeClass network policy (auto-net-pol); Auto Mode's ALB IngressClass needs cluster load balancing
  and subnets tagged for its scheme; the Auto Mode EBS provisioner needs cluster block storage; a Pod
  Identity association needs the agent (built into Auto Mode) and a namespace the platform creates.
- Rotating secrets: every secret AWS rotates reaches its consumers without a person: an External Secret
  refreshed often enough, and a consumer that reads a file or is restarted by Reloader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Templates = Mapping[str, Mapping[str, Any]]  # stack name -> template
Manifests = Sequence[Mapping[str, Any]]

_DEPLOY_TIME = re.compile(r"<deploy-time (\{.*?\})>")

# --- resolving references ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceRef:
    stack: str
    logical_id: str
    attribute: str | None  # None for a Ref

    def resource(self, templates: Templates) -> Mapping[str, Any]:
        resource: Mapping[str, Any] = templates[self.stack]["Resources"][self.logical_id]
        return resource


def resolve(expression: Any, stack: str, templates: Templates) -> ResourceRef | None:
    """The resource a CloudFormation expression points at (through stack outputs and imports), if any."""
    if isinstance(expression, str):
        match = _DEPLOY_TIME.search(expression)
        if match is None:
            return None
        expression = json.loads(match.group(1))
    if not isinstance(expression, Mapping):
        return None
    if "Ref" in expression:
        owner = _owner(expression["Ref"], stack, templates)
        return ResourceRef(owner, expression["Ref"], None) if owner else None
    if "Fn::GetAtt" in expression:
        logical_id, attribute = expression["Fn::GetAtt"]
        owner = _owner(logical_id, stack, templates)
        return ResourceRef(owner, logical_id, attribute) if owner else None
    if "Fn::GetStackOutput" in expression:
        spec = expression["Fn::GetStackOutput"]
        return resolve(
            templates[spec["StackName"]]["Outputs"][spec["OutputName"]]["Value"], spec["StackName"], templates
        )
    if "Fn::ImportValue" in expression:
        for name, template in templates.items():
            for output in template.get("Outputs", {}).values():
                if output.get("Export", {}).get("Name") == expression["Fn::ImportValue"]:
                    return resolve(output["Value"], name, templates)
    return None


def _owner(logical_id: str, stack: str, templates: Templates) -> str | None:
    """The stack holding `logical_id`: `stack` itself, else the one other stack that has it (a manifest's
    expressions belong to the stack that applies its chart, which a file in dist/k8s does not name)."""
    if logical_id in templates.get(stack, {}).get("Resources", {}):
        return stack
    owners = [name for name, template in templates.items() if logical_id in template.get("Resources", {})]
    return owners[0] if len(owners) == 1 else None


def resources(templates: Templates, resource_type: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for stack, template in templates.items():
        for logical_id, resource in template.get("Resources", {}).items():
            if resource["Type"] == resource_type:
                yield stack, logical_id, resource


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _the_cluster(templates: Templates) -> tuple[str, str, Mapping[str, Any]]:
    (cluster,) = list(resources(templates, "AWS::EKS::Cluster"))
    return cluster


def _cluster_role(templates: Templates) -> ResourceRef:
    stack, _, cluster = _the_cluster(templates)
    role = resolve(cluster["Properties"]["RoleArn"], stack, templates)
    assert role is not None, "the cluster's RoleArn does not point at a role in the templates"
    return role


# --- IAM ----------------------------------------------------------------------------------------------


def _principal_matches(principal: Any, role: ResourceRef, stack: str, templates: Templates) -> bool:
    if not isinstance(principal, Mapping):
        return False
    for candidate in _as_list(principal.get("AWS", [])):
        found = resolve(candidate, stack, templates)
        if found is not None and (found.stack, found.logical_id) == (role.stack, role.logical_id):
            return True
    return False


def _key_grants(key: ResourceRef, role: ResourceRef, templates: Templates) -> list[tuple[set[str], Any]]:
    """(actions, condition) of every key-policy statement that allows `role`."""
    grants = []
    for statement in key.resource(templates)["Properties"]["KeyPolicy"]["Statement"]:
        if statement.get("Effect") == "Allow" and _principal_matches(
            statement.get("Principal"), role, key.stack, templates
        ):
            grants.append((set(_as_list(statement["Action"])), statement.get("Condition")))
    return grants


# EKS User Guide, auto-kms: what the cluster role needs on a customer key for Auto Mode volumes.
AUTO_KMS_USE = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"}
AUTO_KMS_GRANTS = {"kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"}
GRANT_FOR_AWS_RESOURCE = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
# EKS User Guide, auto-learn-iam "Custom AWS tags for EKS Auto resources": the statements (by what they tag)
# the cluster role needs before Auto Mode may put user tags on what it creates.
TAG_POLICY_ACTIONS = {
    "instances": {"ec2:CreateFleet", "ec2:RunInstances", "ec2:CreateLaunchTemplate"},
    "volumes": {"ec2:CreateVolume", "ec2:CreateSnapshot"},
    "load balancers": {"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"},
}


def _role_statements(role: ResourceRef, templates: Templates) -> list[Mapping[str, Any]]:
    """Statements of every inline or customer-managed policy attached to `role` in the templates."""
    statements: list[Mapping[str, Any]] = []
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for stack, _, policy in resources(templates, policy_type):
            roles = [resolve(r, stack, templates) for r in policy["Properties"].get("Roles", [])]
            if any(r is not None and (r.stack, r.logical_id) == (role.stack, role.logical_id) for r in roles):
                statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    statements.extend(
        s for p in role.resource(templates)["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
    )
    return statements


def _role_allows(role: ResourceRef, actions: set[str], templates: Templates) -> bool:
    allowed: set[str] = set()
    for statement in _role_statements(role, templates):
        if statement.get("Effect") == "Allow":
            allowed.update(_as_list(statement["Action"]))
    return actions <= allowed


def missing_iam(templates: Templates, manifests: Manifests) -> list[str]:
    """Permissions that fields of the synthesized objects imply and the roles or key policies lack."""
    problems: list[str] = []
    cluster_stack, _, cluster = _the_cluster(templates)
    cluster_role = _cluster_role(templates)
    node_role = resolve(cluster["Properties"]["ComputeConfig"]["NodeRoleArn"], cluster_stack, templates)
    node_role_name = node_role.resource(templates)["Properties"].get("RoleName") if node_role else None
    manifest_stack = _manifest_stack(templates)

    def need_key(kind: str, name: str, key_expression: str) -> None:
        key = resolve(key_expression, manifest_stack, templates)
        if key is None or key.resource(templates)["Type"] != "AWS::KMS::Key":
            problems.append(f"{kind} {name} names KMS key {key_expression}, which is not a key of the platform")
            return
        grants = _key_grants(key, cluster_role, templates)
        use = set().union(*(actions for actions, condition in grants if condition is None)) if grants else set()
        grant = set().union(*(a for a, c in grants if c == GRANT_FOR_AWS_RESOURCE)) if grants else set()
        if not use >= AUTO_KMS_USE:
            problems.append(
                f"{kind} {name}: key {key.logical_id} does not let the cluster role use it "
                f"({sorted(AUTO_KMS_USE - use)} missing)"
            )
        if not grant >= AUTO_KMS_GRANTS:
            problems.append(
                f"{kind} {name}: key {key.logical_id} does not let the cluster role manage grants for AWS resources "
                f"({sorted(AUTO_KMS_GRANTS - grant)} missing)"
            )

    def need_tags(kind: str, name: str, what: str) -> None:
        if not _role_allows(cluster_role, TAG_POLICY_ACTIONS[what], templates):
            problems.append(
                f"{kind} {name} carries user tags, but the cluster role has no tag policy for {what} "
                "(EKS User Guide, auto-learn-iam): every create would be denied"
            )

    for doc in manifests:
        kind, name, spec = doc["kind"], doc["metadata"]["name"], doc.get("spec", {})
        if kind == "NodeClass":
            need_key(kind, name, spec.get("ephemeralStorage", {}).get("kmsKeyID", ""))
            if spec.get("tags"):
                need_tags(kind, name, "instances")
                need_tags(kind, name, "volumes")
            if spec.get("role") != node_role_name:
                problems.append(
                    f"NodeClass {name} uses role {spec.get('role')!r}, not the cluster's node role "
                    f"{node_role_name!r}: it needs its own EC2 access entry with AmazonEKSAutoNodePolicy"
                )
        elif kind == "IngressClassParams" and spec.get("tags"):
            need_tags(kind, name, "load balancers")
        elif kind == "StorageClass":
            parameters = doc.get("parameters", {})
            if "kmsKeyId" in parameters:
                need_key(kind, name, parameters["kmsKeyId"])
            if any(k.startswith("tagSpecification") for k in parameters):
                need_tags(kind, name, "volumes")
    problems += _alarm_topics_cloudwatch_cannot_use(templates)
    for stack, logical_id, role in resources(templates, "AWS::IAM::Role"):
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            if statement.get("Principal", {}).get("Service") == "pods.eks.amazonaws.com" and not {
                "sts:AssumeRole",
                "sts:TagSession",
            } <= set(_as_list(statement["Action"])):
                problems.append(f"Pod Identity role {stack}/{logical_id} must allow sts:AssumeRole and sts:TagSession")
    return problems


# CloudWatch User Guide, alarms to an SNS topic encrypted with a customer managed key: the key policy must
# let the CloudWatch service principal decrypt and generate data keys, or every notification is dropped.
CLOUDWATCH_TOPIC_KEY_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey*"}


def _alarm_topics_cloudwatch_cannot_use(templates: Templates) -> list[str]:
    problems = []
    for stack, logical_id, alarm in resources(templates, "AWS::CloudWatch::Alarm"):
        properties = alarm["Properties"]
        for action in [*properties.get("AlarmActions", []), *properties.get("OKActions", [])]:
            topic = resolve(action, stack, templates)
            if topic is None or topic.resource(templates)["Type"] != "AWS::SNS::Topic":
                continue
            key_id = topic.resource(templates)["Properties"].get("KmsMasterKeyId")
            key = resolve(key_id, topic.stack, templates) if key_id else None
            if key is None:
                continue
            allowed: set[str] = set()
            for statement in key.resource(templates)["Properties"]["KeyPolicy"]["Statement"]:
                services = _as_list((statement.get("Principal") or {}).get("Service", []))
                if statement.get("Effect") == "Allow" and "cloudwatch.amazonaws.com" in services:
                    allowed |= set(_as_list(statement["Action"]))
            if not allowed >= CLOUDWATCH_TOPIC_KEY_ACTIONS:
                problems.append(
                    f"alarm {stack}/{logical_id} notifies topic {topic.logical_id}, whose key {key.logical_id} does "
                    f"not let cloudwatch.amazonaws.com use it ({sorted(CLOUDWATCH_TOPIC_KEY_ACTIONS - allowed)} "
                    "missing): every notification would be dropped"
                )
    return problems


def _manifest_stack(templates: Templates) -> str:
    """Deploy-time values in manifests are rendered as expressions of the stack that applies the chart;
    resolution goes through stack outputs, so any stack with the referenced outputs works: take the cluster's."""
    stack, _, _ = _the_cluster(templates)
    return stack


# --- container runtime contract ---------------------------------------------------------------------------

# The users each image defines (their Dockerfiles set no USER: root is the only entry the workloads' UIDs
# could match). vllm/vllm-openai: docker/Dockerfile of vLLM v0.11.0; ghcr.io/berriai/litellm: the repo's
# Dockerfile (Chainguard/Wolfi base, runs as root); amazon/aws-cli: Amazon Linux 2 base, no USER.
IMAGE_UIDS = {"vllm/vllm-openai": {0}, "ghcr.io/berriai/litellm": {0}, "amazon/aws-cli": {0}}
# Telemetry each image's software sends unless told not to, and the variables that stop it.
# vLLM: vllm/usage/usage_lib.py is_usage_stats_enabled (VLLM_NO_USAGE_STATS, DO_NOT_TRACK); huggingface_hub
# (in the vLLM image): constants.py HF_HUB_DISABLE_TELEMETRY (or DO_NOT_TRACK). LiteLLM 1.102.1 sets
# `litellm.telemetry = True` but reads it nowhere (litellm/__init__.py); the Prisma CLI it runs for
# migrations reports usage unless CHECKPOINT_DISABLE=1 (Prisma docs). The AWS CLI sends no usage data.
IMAGE_TELEMETRY_OFF = {
    "vllm/vllm-openai": {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_DISABLE_TELEMETRY": "1"},
    "ghcr.io/berriai/litellm": {"CHECKPOINT_DISABLE": "1"},
    "amazon/aws-cli": {},
}
# Variables naming a place a process writes (homes, caches, state directories).
_WRITE_PATH_VAR = re.compile(r"(^HOME$|_HOME$|_DIR$|_ROOT$|^XDG_|^TMPDIR$|_CACHE$|_PATH$|_BASE$)")


def _repository(image: str) -> str:
    return image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@", 1)[0]


def _pod_spec(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: Mapping[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def _under(path: str, mounts: Sequence[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def runtime_contract_violations(manifests: Manifests) -> list[str]:
    problems: list[str] = []
    for doc in manifests:
        pod = _pod_spec(doc)
        if pod is None:
            continue
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{doc['kind']} {doc['metadata']['name']} container {container['name']}"
            repository = _repository(container["image"])
            if repository not in IMAGE_UIDS:
                problems.append(f"{where}: image {repository} is unknown here; record its users and telemetry")
                continue
            security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            uid = security.get("runAsUser")
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            writable = [
                m["mountPath"]
                for m in container.get("volumeMounts", [])
                if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")
            ]
            if uid is not None and uid not in IMAGE_UIDS[repository]:
                for name in ("USER", "HOME"):
                    if not env.get(name):
                        problems.append(f"{where}: runs as UID {uid}, which {repository} does not list, without {name}")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: the root filesystem is writable")
            for name, value in env.items():
                if value and value.startswith("/") and _WRITE_PATH_VAR.search(name) and not _under(value, writable):
                    problems.append(f"{where}: {name}={value} is not on a writable volume (emptyDir)")
            for name, value in IMAGE_TELEMETRY_OFF[repository].items():
                if env.get(name) != value:
                    problems.append(f"{where}: {repository} sends telemetry unless {name}={value}")
    return problems


# --- features with a second switch ----------------------------------------------------------------------

ALB_CONTROLLER = "eks.amazonaws.com/alb"
EBS_PROVISIONER = "ebs.csi.eks.amazonaws.com"
SUBNET_ROLE_TAG = {"internal": "kubernetes.io/role/internal-elb", "internet-facing": "kubernetes.io/role/elb"}
# Namespaces the EKS add-ons create themselves (amazon-cloudwatch-observability).
ADD_ON_NAMESPACES = {"amazon-cloudwatch"}


def _find(
    manifests: Manifests, kind: str, name: str | None = None, namespace: str | None = None
) -> list[Mapping[str, Any]]:
    return [
        d
        for d in manifests
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def missing_enablements(templates: Templates, manifests: Manifests) -> list[str]:
    problems: list[str] = []
    _, _, cluster = _the_cluster(templates)
    props = cluster["Properties"]
    auto_mode = props.get("ComputeConfig", {}).get("Enabled") is True
    if _find(manifests, "NetworkPolicy"):
        switch = [
            d
            for d in _find(manifests, "ConfigMap", "amazon-vpc-cni", "kube-system")
            if d.get("data", {}).get("enable-network-policy-controller") == "true"
        ]
        if not switch:
            problems.append(
                "NetworkPolicies exist but no kube-system/amazon-vpc-cni ConfigMap sets "
                'enable-network-policy-controller: "true"; Auto Mode would accept and ignore them (auto-net-pol)'
            )
        for node_class in _find(manifests, "NodeClass"):
            if node_class["spec"].get("networkPolicy") not in ("DefaultAllow", "DefaultDeny"):
                problems.append(f"NodeClass {node_class['metadata']['name']} sets no networkPolicy")
    for ingress_class in _find(manifests, "IngressClass"):
        if ingress_class["spec"]["controller"] != ALB_CONTROLLER:
            continue
        if props.get("KubernetesNetworkConfig", {}).get("ElasticLoadBalancing", {}).get("Enabled") is not True:
            problems.append(f"IngressClass {ingress_class['metadata']['name']} needs the cluster's load balancing on")
        params_name = ingress_class["spec"].get("parameters", {}).get("name")
        for params in _find(manifests, "IngressClassParams", params_name):
            scheme = params["spec"].get("scheme", "internal")
            if "subnets" not in params["spec"] and not _tagged_subnets(templates, SUBNET_ROLE_TAG[scheme]):
                problems.append(f"an {scheme} ALB needs subnets tagged {SUBNET_ROLE_TAG[scheme]}=1, and none are")
    for storage_class in _find(manifests, "StorageClass"):
        if (
            storage_class["provisioner"] == EBS_PROVISIONER
            and props.get("StorageConfig", {}).get("BlockStorage", {}).get("Enabled") is not True
        ):
            problems.append(f"StorageClass {storage_class['metadata']['name']} needs the cluster's block storage on")
    namespaces = {d["metadata"]["name"] for d in _find(manifests, "Namespace")} | ADD_ON_NAMESPACES
    addons = {a["Properties"]["AddonName"] for _, _, a in resources(templates, "AWS::EKS::Addon")}
    for stack, logical_id, association in resources(templates, "AWS::EKS::PodIdentityAssociation"):
        if not auto_mode and "eks-pod-identity-agent" not in addons:
            problems.append(f"{stack}/{logical_id}: Pod Identity needs Auto Mode or the eks-pod-identity-agent add-on")
        if association["Properties"]["Namespace"] not in namespaces:
            problems.append(
                f"{stack}/{logical_id}: namespace {association['Properties']['Namespace']} is created by nothing"
            )
    return problems


def _tagged_subnets(templates: Templates, tag: str) -> list[str]:
    return [
        logical_id
        for _, logical_id, subnet in resources(templates, "AWS::EC2::Subnet")
        if any(t["Key"] == tag and t["Value"] in ("1", "") for t in subnet["Properties"].get("Tags", []))
    ]


# --- secrets that rotate ----------------------------------------------------------------------------------

RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
RELOAD_AUTO_ANNOTATIONS = ("reloader.stakater.com/auto", "secret.reloader.stakater.com/auto")
# RDS rotates a managed master password every 7 days (Aurora User Guide, rds-secrets-manager); a copy
# refreshed less often than this leaves new connections failing for longer after each rotation.
MAX_REFRESH_SECONDS = 15 * 60


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def rotating_secrets(templates: Templates) -> list[ResourceRef]:
    """Secrets AWS rotates: RDS-managed master passwords and secrets with a rotation schedule."""
    found = [
        ResourceRef(stack, logical_id, "MasterUserSecret.SecretArn")
        for stack, logical_id, db in resources(templates, "AWS::RDS::DBCluster")
        if db["Properties"].get("ManageMasterUserPassword")
    ]
    for stack, _, schedule in resources(templates, "AWS::SecretsManager::RotationSchedule"):
        secret = resolve(schedule["Properties"]["SecretId"], stack, templates)
        if secret is not None:
            found.append(secret)
    return found


def _reloaded_namespaces(templates: Templates) -> set[str]:
    watched: set[str] = set()
    for _, _, chart in resources(templates, "Custom::AWSCDK-EKS-HelmChart"):
        if chart["Properties"]["Chart"] != "reloader":
            continue
        values = json.loads(chart["Properties"].get("Values") or "{}")
        settings = values.get("reloader", {})
        watched.update(["*"] if settings.get("watchGlobally", True) else settings.get("namespaces", []))
    return watched


def rotation_gaps(templates: Templates, manifests: Manifests) -> list[str]:
    """For each rotating secret, how its new value fails to reach a consumer (empty: every path exists)."""
    problems: list[str] = []
    reloaded = _reloaded_namespaces(templates)
    for secret in rotating_secrets(templates):
        for external in _find(manifests, "ExternalSecret"):
            refs = [resolve(d["remoteRef"]["key"], secret.stack, templates) for d in external["spec"].get("data", [])]
            if not any(r is not None and (r.stack, r.logical_id) == (secret.stack, secret.logical_id) for r in refs):
                continue
            namespace = external["metadata"]["namespace"]
            target = external["spec"]["target"]["name"]
            where = f"{secret.logical_id} -> ExternalSecret {namespace}/{external['metadata']['name']}"
            if _seconds(external["spec"].get("refreshInterval", "1h")) > MAX_REFRESH_SECONDS:
                problems.append(f"{where}: refreshInterval {external['spec'].get('refreshInterval')} exceeds 15m")
            for doc in manifests:
                pod = _pod_spec(doc)
                if pod is None or doc["metadata"].get("namespace") != namespace:
                    continue
                if not _reads_secret_from_env(pod, target):
                    continue  # a file mount is rewritten by the kubelet; nothing reads it
                annotations = doc["metadata"].get("annotations", {})
                named = target in [n.strip() for n in annotations.get(RELOAD_ANNOTATION, "").split(",")]
                auto = any(annotations.get(a) == "true" for a in RELOAD_AUTO_ANNOTATIONS)
                if not (named or auto):
                    problems.append(
                        f"{where}: {doc['kind']} {doc['metadata']['name']} reads Secret {target} from its environment "
                        f"once, at start, and nothing restarts it ({RELOAD_ANNOTATION} missing)"
                    )
                elif namespace not in reloaded and "*" not in reloaded:
                    problems.append(f"{where}: no Reloader watches namespace {namespace}")
    return problems


def _reads_secret_from_env(pod: Mapping[str, Any], secret: str) -> bool:
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for entry in container.get("env", []):
            if entry.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == secret:
                return True
        for source in container.get("envFrom", []):
            if source.get("secretRef", {}).get("name") == secret:
                return True
    return False
