"""PodIdentityRole, the construct every workload's AWS access goes through."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from cdk_constructs.pod_identity import PodIdentityRole


def _role_in_a_stack(tmp_path: Path, *, associate: bool) -> Template:
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Workload")
    cluster = eks.Cluster.from_cluster_attributes(stack, "Cluster", cluster_name="genai-dev")
    PodIdentityRole(
        stack,
        "ModelReader",
        cluster=cluster,
        namespace="inference",
        service_account="vllm",
        statements=[iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::models/*"])],
        associate=associate,
    )
    return Template.from_stack(stack)


def test_role_policy_and_association(tmp_path: Path) -> None:
    template = _role_in_a_stack(tmp_path, associate=True)
    template.has_resource_properties(
        "AWS::EKS::PodIdentityAssociation",
        {
            "ClusterName": "genai-dev",
            "Namespace": "inference",
            "ServiceAccount": "vllm",
            "RoleArn": {"Fn::GetAtt": [Match.string_like_regexp("ModelReaderRole"), "Arn"]},
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": ["sts:AssumeRole", "sts:TagSession"],
                        "Effect": "Allow",
                        "Principal": {"Service": "pods.eks.amazonaws.com"},
                        "Condition": {
                            "StringEquals": {
                                "aws:SourceAccount": {"Ref": "AWS::AccountId"},
                                "aws:RequestTag/eks-cluster-name": "genai-dev",
                                "aws:RequestTag/kubernetes-namespace": "inference",
                                "aws:RequestTag/kubernetes-service-account": "vllm",
                            }
                        },
                    }
                ]
            }
        },
    )
    # Permissions as a customer-managed policy: no inline policy (NIST/HIPAA/PCI IAMNoInlinePolicy).
    template.resource_count_is("AWS::IAM::Policy", 0)
    template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "PolicyDocument": {
                "Statement": [{"Action": "s3:GetObject", "Effect": "Allow", "Resource": "arn:aws:s3:::models/*"}]
            }
        },
    )


def test_add_ons_bring_their_own_association(tmp_path: Path) -> None:
    template = _role_in_a_stack(tmp_path, associate=False)
    template.resource_count_is("AWS::EKS::PodIdentityAssociation", 0)
    template.resource_count_is("AWS::IAM::Role", 1)
