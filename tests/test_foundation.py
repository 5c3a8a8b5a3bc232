"""CDK assertions on the foundation stack, for dev and prod."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Annotations, Match

from tests.conftest import Synthesized, only, resources_of

# EKS User Guide, create-node-role (Auto Mode) and auto-cluster-iam-role: the managed policies of each role.
NODE_ROLE_MANAGED_POLICIES = ("AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly")
AUTO_MODE_CLUSTER_ROLE_POLICIES = (
    "AmazonEKSClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)


def _cluster(synth: Synthesized) -> dict[str, Any]:
    props: dict[str, Any] = only(resources_of(synth.template_json(), "AWS::EKS::Cluster"))["Properties"]
    return props


def _logical_id(synth: Synthesized, resource_type: str, path_fragment: str) -> str:
    matches = [
        logical_id
        for logical_id, resource in resources_of(synth.template_json(), resource_type).items()
        if path_fragment in resource.get("Metadata", {}).get("aws:cdk:path", "")
    ]
    assert len(matches) == 1, (resource_type, path_fragment, matches)
    return matches[0]


def test_native_auto_mode_cluster_with_built_in_pools(each_env: Synthesized) -> None:
    each_env.template.resource_count_is("AWS::EKS::Cluster", 1)
    each_env.template.resource_count_is("Custom::AWSCDK-EKS-Cluster", 0)
    node_role = _logical_id(each_env, "AWS::IAM::Role", "/Eks/NodeRole/")
    each_env.template.has_resource_properties(
        "AWS::EKS::Cluster",
        {
            "Name": each_env.config.prefix,
            "Version": each_env.config.cluster.kubernetes_version,
            "ComputeConfig": {
                "Enabled": True,
                "NodePools": ["system", "general-purpose"],
                "NodeRoleArn": {"Fn::GetAtt": [node_role, "Arn"]},
            },
            "StorageConfig": {"BlockStorage": {"Enabled": True}},
            "KubernetesNetworkConfig": Match.object_like({"ElasticLoadBalancing": {"Enabled": True}}),
            "AccessConfig": {"AuthenticationMode": "API"},
        },
    )


def test_secrets_encrypted_with_the_customer_key(each_env: Synthesized) -> None:
    secrets_key = _logical_id(each_env, "AWS::KMS::Key", "/Keys/EksSecrets/")
    assert _cluster(each_env)["EncryptionConfig"] == [
        {"Provider": {"KeyArn": {"Fn::GetAtt": [secrets_key, "Arn"]}}, "Resources": ["secrets"]}
    ]


def test_all_five_control_plane_logs_to_an_encrypted_group(each_env: Synthesized) -> None:
    enabled = {entry["Type"] for entry in _cluster(each_env)["Logging"]["ClusterLogging"]["EnabledTypes"]}
    assert enabled == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    logs_key = _logical_id(each_env, "AWS::KMS::Key", "/Keys/Logs/")
    each_env.template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": f"/aws/eks/{each_env.config.prefix}/cluster",
            "KmsKeyId": {"Fn::GetAtt": [logs_key, "Arn"]},
            "RetentionInDays": each_env.config.cluster.control_plane_log_retention_days,
        },
    )


def test_dev_endpoint_public_only_from_the_allowlist(dev: Synthesized) -> None:
    vpc_config = _cluster(dev)["ResourcesVpcConfig"]
    assert vpc_config["EndpointPublicAccess"] is True
    assert vpc_config["EndpointPrivateAccess"] is True
    assert vpc_config["PublicAccessCidrs"] == list(dev.config.cluster.public_access_cidrs)


def test_prod_endpoint_is_private(prod: Synthesized) -> None:
    vpc_config = _cluster(prod)["ResourcesVpcConfig"]
    assert vpc_config["EndpointPublicAccess"] is False
    assert vpc_config["EndpointPrivateAccess"] is True
    assert "PublicAccessCidrs" not in vpc_config


def test_node_role_has_only_the_minimal_auto_mode_policies(dev: Synthesized) -> None:
    role = dev.template_json()["Resources"][_logical_id(dev, "AWS::IAM::Role", "/Eks/NodeRole/")]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    attached = {json.dumps(arn) for arn in role["Properties"]["ManagedPolicyArns"]}
    assert len(attached) == len(NODE_ROLE_MANAGED_POLICIES)
    for name in NODE_ROLE_MANAGED_POLICIES:
        assert any(f"policy/{name}" in arn for arn in attached), name


def test_cluster_role_has_the_auto_mode_policies(dev: Synthesized) -> None:
    role = dev.template_json()["Resources"][_logical_id(dev, "AWS::IAM::Role", "/Eks/Cluster/Role/")]
    attached = json.dumps(role["Properties"]["ManagedPolicyArns"])
    for name in AUTO_MODE_CLUSTER_ROLE_POLICIES:
        assert f"policy/{name}" in attached


def test_admin_access_entries_from_config(synth_in: Any) -> None:
    admins = ["arn:aws:iam::123456789012:role/PlatformAdmins", "arn:aws:iam::123456789012:user/alice"]
    synth = synth_in("dev", **{"cluster.admin_principal_arns": json.dumps(admins)})
    entries = {
        entry["Properties"]["PrincipalArn"]: entry["Properties"]
        for entry in resources_of(synth.template_json(), "AWS::EKS::AccessEntry").values()
        if isinstance(entry["Properties"]["PrincipalArn"], str)  # not the kubectl provider's own entry
    }
    for arn in admins:
        (policy,) = entries[arn]["AccessPolicies"]
        assert policy["AccessScope"] == {"Type": "cluster"}
        assert json.dumps(policy["PolicyArn"]).endswith(':cluster-access-policy/AmazonEKSClusterAdminPolicy"]]}')


def test_kubectl_provider_uses_the_layer_of_the_cluster_version(dev: Synthesized) -> None:
    layers = resources_of(dev.template_json(), "AWS::Lambda::LayerVersion")
    descriptions = " ".join(layer["Properties"].get("Description", "") for layer in layers.values())
    assert "kubectl v1.35" in descriptions or "kubectl 1.35" in descriptions, descriptions


def test_metrics_server_and_container_insights_add_ons(each_env: Synthesized) -> None:
    each_env.template.resource_count_is("AWS::EKS::Addon", 2)
    each_env.template.has_resource_properties("AWS::EKS::Addon", {"AddonName": "metrics-server"})
    agent_role = _logical_id(each_env, "AWS::IAM::Role", "/Addons/CloudWatchAgentIdentity/Role/")
    each_env.template.has_resource_properties(
        "AWS::EKS::Addon",
        {
            "AddonName": "amazon-cloudwatch-observability",
            "PodIdentityAssociations": [
                {"RoleArn": {"Fn::GetAtt": [agent_role, "Arn"]}, "ServiceAccount": "cloudwatch-agent"}
            ],
        },
    )


def test_pod_identity_role_trusts_only_its_service_account(dev: Synthesized) -> None:
    role = dev.template_json()["Resources"][_logical_id(dev, "AWS::IAM::Role", "/Addons/CloudWatchAgentIdentity/Role/")]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    conditions = statement["Condition"]["StringEquals"]
    assert conditions["aws:RequestTag/kubernetes-namespace"] == "amazon-cloudwatch"
    assert conditions["aws:RequestTag/kubernetes-service-account"] == "cloudwatch-agent"
    assert "aws:RequestTag/eks-cluster-name" in conditions
    assert "aws:SourceAccount" in conditions


def test_no_pod_identity_agent_add_on_on_auto_mode(each_env: Synthesized) -> None:
    # Auto Mode runs the agent itself; a second one clashes (aws/aws-cdk#32580).
    addons = resources_of(each_env.template_json(), "AWS::EKS::Addon").values()
    assert "eks-pod-identity-agent" not in {a["Properties"]["AddonName"] for a in addons}


def test_four_rotating_customer_keys(each_env: Synthesized) -> None:
    keys = resources_of(each_env.template_json(), "AWS::KMS::Key")
    assert len(keys) == 4
    assert all(key["Properties"]["EnableKeyRotation"] is True for key in keys.values())
    aliases = {a["Properties"]["AliasName"] for a in resources_of(each_env.template_json(), "AWS::KMS::Alias").values()}
    prefix = each_env.config.prefix
    assert aliases == {f"alias/{prefix}/{n}" for n in ("secrets", "node-volumes", "logs", "data")}


def test_removal_policy_per_environment(dev: Synthesized, prod: Synthesized) -> None:
    for key in resources_of(dev.template_json(), "AWS::KMS::Key").values():
        assert key["DeletionPolicy"] == "Delete"
        assert key["Properties"]["PendingWindowInDays"] == 7
    for key in resources_of(prod.template_json(), "AWS::KMS::Key").values():
        assert key["DeletionPolicy"] == "Retain"
        assert key["Properties"]["PendingWindowInDays"] == 30


def test_node_volume_key_policy_admits_the_auto_mode_cluster_role(dev: Synthesized) -> None:
    key = dev.template_json()["Resources"][_logical_id(dev, "AWS::KMS::Key", "/Keys/NodeVolumes/")]
    cluster_role = _logical_id(dev, "AWS::IAM::Role", "/Eks/Cluster/Role/")
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    use = statements["AllowAutoModeClusterRoleToUseKey"]
    assert use["Principal"] == {"AWS": {"Fn::GetAtt": [cluster_role, "Arn"]}}
    assert sorted(use["Action"]) == sorted(
        ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    )
    grant = statements["AllowAutoModeClusterRoleToAttachVolumes"]
    # EKS User Guide, auto-kms: grants are created, listed and revoked as volumes attach and detach.
    assert sorted(grant["Action"]) == ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_logs_key_admits_cloudwatch_logs_for_this_account_only(dev: Synthesized) -> None:
    key = dev.template_json()["Resources"][_logical_id(dev, "AWS::KMS::Key", "/Keys/Logs/")]
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    logs = statements["AllowCloudWatchLogsInThisAccount"]
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]


def test_vpc_spans_the_configured_zones_with_private_node_subnets(dev: Synthesized, prod: Synthesized) -> None:
    for synth, zones in ((dev, 2), (prod, 3)):
        subnets = resources_of(synth.template_json(), "AWS::EC2::Subnet").values()
        private = [
            s
            for s in subnets
            if s["Properties"]["MapPublicIpOnLaunch"] is False
            and any(t["Key"] == "kubernetes.io/role/internal-elb" for t in s["Properties"].get("Tags", []))
        ]
        assert len(private) == zones
        synth.template.resource_count_is("AWS::EC2::NatGateway", synth.config.vpc.nat_gateways)
    cluster_subnets = _cluster(prod)["ResourcesVpcConfig"]["SubnetIds"]
    assert len(cluster_subnets) == 3


def test_s3_gateway_endpoint_on_private_route_tables(each_env: Synthesized) -> None:
    endpoint = only(
        {
            k: v
            for k, v in resources_of(each_env.template_json(), "AWS::EC2::VPCEndpoint").items()
            if v["Properties"].get("VpcEndpointType", "Gateway") == "Gateway"
        }
    )
    assert "s3" in json.dumps(endpoint["Properties"]["ServiceName"])
    assert len(endpoint["Properties"]["RouteTableIds"]) == each_env.config.vpc.max_azs


def test_interface_endpoints_from_config(dev: Synthesized, prod: Synthesized) -> None:
    def interface_services(synth: Synthesized) -> set[str]:
        return {
            json.dumps(v["Properties"]["ServiceName"])
            for v in resources_of(synth.template_json(), "AWS::EC2::VPCEndpoint").values()
            if v["Properties"].get("VpcEndpointType") == "Interface"
        }

    assert interface_services(dev) == set()
    services = interface_services(prod)
    assert len(services) == len(prod.config.vpc.interface_endpoints) == 6
    for name in ("ecr.api", "ecr.dkr", "sts", "logs", "eks-auth"):
        assert any(f".{name}" in s for s in services), name
    endpoint_sg = [
        sg
        for sg in resources_of(prod.template_json(), "AWS::EC2::SecurityGroup").values()
        if "interface endpoints" in sg["Properties"]["GroupDescription"]
    ]
    (sg,) = endpoint_sg
    assert sg["Properties"]["SecurityGroupIngress"] == [
        {
            "CidrIp": prod.config.vpc.cidr,
            "Description": "HTTPS from the VPC",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


def test_flow_logs_to_an_encrypted_group_with_retention(each_env: Synthesized) -> None:
    each_env.template.has_resource_properties("AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL"})
    logs_key = _logical_id(each_env, "AWS::KMS::Key", "/Keys/Logs/")
    each_env.template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "KmsKeyId": {"Fn::GetAtt": [logs_key, "Arn"]},
            "RetentionInDays": each_env.config.vpc.flow_log_retention_days,
        },
    )
    # A customer-managed policy, not an inline one, for the flow-log role.
    each_env.template.resource_count_is("AWS::IAM::Policy", 2)  # only the kubectl provider's two


def test_pinned_account_uses_configured_zones_without_lookups(synth_in: Any) -> None:
    synth = synth_in(
        "dev",
        account="123456789012",
        region="eu-west-1",
        availability_zones='["eu-west-1a", "eu-west-1b"]',
    )
    zones = {
        s["Properties"]["AvailabilityZone"] for s in resources_of(synth.template_json(), "AWS::EC2::Subnet").values()
    }
    assert zones == {"eu-west-1a", "eu-west-1b"}
    assert "missing" not in synth.cloud_assembly_manifest(), "synth asked for a lookup (needs AWS credentials)"


def test_existing_vpc_is_imported_not_created(synth_in: Any) -> None:
    synth = synth_in(
        "dev",
        **{
            "vpc.vpc_id": "vpc-0123456789abcdef0",
            "vpc.private_subnet_ids": '["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]',
            "availability_zones": '["us-west-2a", "us-west-2b"]',
        },
    )
    synth.template.resource_count_is("AWS::EC2::VPC", 0)
    synth.template.resource_count_is("AWS::EC2::Subnet", 0)
    assert _cluster(synth)["ResourcesVpcConfig"]["SubnetIds"] == [
        "subnet-0123456789abcdef0",
        "subnet-0fedcba9876543210",
    ]


def test_tags_on_every_taggable_resource(dev: Synthesized) -> None:
    dev.template.has_resource_properties(
        "AWS::EKS::Cluster",
        {"Tags": Match.array_with([{"Key": "environment", "Value": "dev"}, {"Key": "project", "Value": "genai"}])},
    )


def test_prod_stack_has_termination_protection(dev: Synthesized, prod: Synthesized) -> None:
    assert prod.platform.foundation.termination_protection is True
    assert dev.platform.foundation.termination_protection is False


def test_extended_support_version_synthesizes_with_a_warning(synth_in: Any) -> None:
    synth = synth_in("dev", **{"cluster.kubernetes_version": "1.33"})
    assert _cluster(synth)["Version"] == "1.33"
    warnings = Annotations.from_stack(synth.platform.foundation).find_warning(
        "*", Match.string_like_regexp("extended-support rate of \\$0.60/h")
    )
    assert len(warnings) == 1


def test_every_log_group_is_encrypted_with_the_logs_key(each_env: Synthesized) -> None:
    logs_key = _logical_id(each_env, "AWS::KMS::Key", "/Keys/Logs/")
    groups = resources_of(each_env.template_json(), "AWS::Logs::LogGroup")
    # flow logs, control plane, and the kubectl provider's two functions (escape hatch)
    assert len(groups) == 4
    for group in groups.values():
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [logs_key, "Arn"]}


def test_stack_outputs_a_user_needs(dev: Synthesized) -> None:
    foundation = dev.stack_json("foundation")["Outputs"]
    assert foundation["ClusterName"]["Value"] == "genai-dev"
    data = dev.stack_json("data")["Outputs"]
    buckets = [
        logical_id
        for logical_id, bucket in resources_of(dev.stack_json("data"), "AWS::S3::Bucket").items()
        if "/ModelStore/Models/" in bucket.get("Metadata", {}).get("aws:cdk:path", "")
    ]
    assert data["ModelBucket"]["Value"] == {"Ref": buckets[0]}
    uri = json.dumps(data["ModelUri"]["Value"])
    assert "s3://" in uri
    assert "/models/meta-llama/Llama-3.1-8B-Instruct" in uri
    assert "GatewayMasterKeySecret" in data
    command = dev.stack_json("gateway")["Outputs"]["GatewayAddressCommand"]["Value"]
    assert command.startswith("kubectl -n gateway get ingress litellm -o jsonpath=")
