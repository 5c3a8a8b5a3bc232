"""The platform's network: private subnets for nodes, NAT egress, endpoints, flow logs."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from aws_cdk import Fn, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_constructs.log_retention import retention
from compliance.acknowledgments import acknowledge
from compliance.checkov_skips import skip_checkov
from platform_config.model import InterfaceEndpoint, VpcSettings

# Tag on the private subnets that the platform's NodeClasses select.
NODE_SUBNET_TAG = "platform.genai/node-subnets"

_INTERFACE_SERVICES: dict[InterfaceEndpoint, ec2.InterfaceVpcEndpointAwsService] = {
    "ecr.api": ec2.InterfaceVpcEndpointAwsService.ECR,
    "ecr.dkr": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "eks": ec2.InterfaceVpcEndpointAwsService.EKS,
    "eks-auth": ec2.InterfaceVpcEndpointAwsService.EKS_AUTH,
    "monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "secretsmanager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "ec2": ec2.InterfaceVpcEndpointAwsService.EC2,
    # Amazon Managed Service for Prometheus's data plane (remote write and query).
    "aps-workspaces": ec2.InterfaceVpcEndpointAwsService.PROMETHEUS_WORKSPACES,
}


class PlatformNetwork(Construct):
    """A new VPC over 2-3 AZs, or an existing one imported by id (no lookups at synth time).

    A new VPC gets public subnets (NAT gateways, internet-facing load balancers) and large private
    subnets for nodes and pods (Auto Mode gives every pod a VPC address), an S3 gateway endpoint so
    model weights never cross NAT (NAT allows 55k connections per destination and bills per GB;
    EKS User Guide ml-inference-fast-model-loading), the configured interface endpoints, and flow
    logs to a KMS-encrypted log group.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: VpcSettings,
        availability_zones: Sequence[str],
        logs_key: kms.IKey,
        removal_policy: RemovalPolicy,
        subnet_tag_value: str,
    ) -> None:
        super().__init__(scope, id)
        self.vpc: ec2.IVpc
        # How NodeClasses find the node subnets: by id for an existing VPC, by our tag for a new one.
        self.node_subnet_terms: list[dict[str, Any]]
        if settings.vpc_id:
            self.node_subnet_terms = [{"id": subnet} for subnet in settings.private_subnet_ids]
            # An existing VPC belongs to whoever runs the network: its endpoints and flow logs are
            # theirs, so nothing is added to it here.
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=settings.vpc_id,
                availability_zones=list(availability_zones)[: len(settings.private_subnet_ids)],
                private_subnet_ids=list(settings.private_subnet_ids),
            )
            return
        self.node_subnet_terms = [{"tags": {NODE_SUBNET_TAG: subnet_tag_value}}]
        self.vpc = self._new_vpc(settings, availability_zones, subnet_tag_value)
        self._add_endpoints(settings.interface_endpoints, settings.cidr)
        self._add_flow_logs(settings, logs_key, removal_policy)

    def _new_vpc(self, settings: VpcSettings, availability_zones: Sequence[str], subnet_tag_value: str) -> ec2.Vpc:
        prefix = ipaddress.IPv4Network(settings.cidr).prefixlen
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(settings.cidr),
            availability_zones=_zones(availability_zones, settings.max_azs),
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public",
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=min(prefix + 6, 28),
                    map_public_ip_on_launch=False,
                ),
                # A quarter of the VPC per AZ: pods take VPC addresses, so private subnets are large.
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=prefix + 2
                ),
            ],
            restrict_default_security_group=True,
        )
        skip_checkov_on_restrict_default_sg_handler(Stack.of(self))
        # Subnet discovery tags for the load balancers EKS Auto Mode creates (EKS User Guide,
        # auto-configure-alb / network-load-balancing).
        for subnet in vpc.public_subnets:
            Tags.of(subnet).add("kubernetes.io/role/elb", "1")
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
                acknowledge(
                    subnet.node.find_child("DefaultRoute"),
                    f"{pack}-VPCNoUnrestrictedRouteToIGW",
                    "Public subnets hold only the NAT gateways and internet-facing load balancers, which "
                    "need a default route to the internet gateway; nodes run in private subnets.",
                )
        for subnet in vpc.private_subnets:
            Tags.of(subnet).add("kubernetes.io/role/internal-elb", "1")
            Tags.of(subnet).add(NODE_SUBNET_TAG, subnet_tag_value)
        return vpc

    def _add_endpoints(self, interface_endpoints: Sequence[InterfaceEndpoint], vpc_cidr: str) -> None:
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[private])
        if not interface_endpoints:
            return
        # One group for every interface endpoint: HTTPS from the VPC's own (literal) CIDR only. CDK's
        # default group names the CIDR by token, which scanners cannot tell from 0.0.0.0/0.
        endpoints_sg = ec2.SecurityGroup(
            self,
            "EndpointsSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="HTTPS from inside the VPC to its interface endpoints",
        )
        endpoints_sg.add_ingress_rule(ec2.Peer.ipv4(vpc_cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        for name in interface_endpoints:
            self.vpc.add_interface_endpoint(
                f"Endpoint-{name}",
                service=_INTERFACE_SERVICES[name],
                subnets=private,
                private_dns_enabled=True,
                security_groups=[endpoints_sg],
                open=False,
            )

    def _add_flow_logs(self, settings: VpcSettings, logs_key: kms.IKey, removal_policy: RemovalPolicy) -> None:
        log_group = logs.LogGroup(
            self,
            "FlowLogs",
            encryption_key=logs_key,
            retention=retention(settings.flow_log_retention_days),
            removal_policy=removal_policy,
        )
        # The flow-log service role gets a customer-managed policy instead of the inline DefaultPolicy
        # CDK would add (NIST/HIPAA/PCI IAMNoInlinePolicy); `without_policy_updates` stops that grant.
        role = iam.Role(self, "FlowLogRole", assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com"))
        iam.ManagedPolicy(
            self,
            "FlowLogPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[log_group.log_group_arn],
                ),
                iam.PolicyStatement(actions=["iam:PassRole"], resources=[role.role_arn]),
            ],
        )
        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group, role.without_policy_updates()),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )


def _zones(availability_zones: Sequence[str], count: int) -> list[str]:
    """The AZs a new VPC spans. Pinned environments list theirs (no lookup at synth). An env-agnostic
    stack gets the region's first `count` zones from Fn::GetAZs at deploy time: left to `max_azs`,
    CDK would cap an env-agnostic VPC at 2 zones whatever was asked."""
    if availability_zones:
        return list(availability_zones)[:count]
    return [Fn.select(index, Fn.get_azs()) for index in range(count)]


_RESTRICT_DEFAULT_SG_CHECKOV_SKIPS = {
    "CKV_AWS_115": "Runs once per deployment to empty the default security group; reserved concurrency would "
    "take capacity from the account's pool for a function that is otherwise idle.",
    "CKV_AWS_116": "Invoked only by CloudFormation during a deployment; a failure shows as a failed stack "
    "event, and a dead-lettered deployment event would have nobody to replay it.",
    "CKV_AWS_117": "Calls only the EC2 API to remove the default security group's rules; it needs no access "
    "into the VPC, and inside it would need a NAT or endpoint path to reach EC2.",
}


def skip_checkov_on_restrict_default_sg_handler(stack: Stack) -> None:
    """checkov skips on aws-cdk-lib's restrict-default-security-group handler (one per stack, CDK's code;
    cdk-nag does not see it: it is a CfnResource, not a lambda.CfnFunction)."""
    provider = stack.node.find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
    for check_id, reason in _RESTRICT_DEFAULT_SG_CHECKOV_SKIPS.items():
        skip_checkov(provider.node.find_child("Handler"), check_id, reason)
