"""The one way a pod gets AWS credentials: EKS Pod Identity."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct


class PodIdentityRole(Construct):
    """An IAM role one Kubernetes service account assumes through EKS Pod Identity.

    The trust policy admits `pods.eks.amazonaws.com` with `sts:AssumeRole` and `sts:TagSession`, and
    only for the session tags of this cluster, namespace and service account (EKS User Guide,
    pod-id-role "Setting Conditions"), so another association in the account cannot borrow it.
    Permissions come as a customer-managed policy (not inline) built from `statements`.

    With `associate=True` (the default) it also creates the `CfnPodIdentityAssociation`; an EKS
    add-on passes `associate=False` and names `role` in its own `PodIdentityAssociations`.
    No service account is created here: Auto Mode runs the Pod Identity agent itself, and
    `cluster.add_service_account(identity_type=POD_IDENTITY)` would add a second agent add-on
    (aws/aws-cdk#32580).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        namespace: str,
        service_account: str,
        statements: Sequence[iam.PolicyStatement] = (),
        aws_managed_policy_names: Sequence[str] = (),
        associate: bool = True,
    ) -> None:
        super().__init__(scope, id)
        self.namespace = namespace
        self.service_account = service_account
        self.role = iam.Role(
            self,
            "Role",
            description=f"EKS Pod Identity for {namespace}/{service_account}",
            assumed_by=iam.SessionTagsPrincipal(iam.ServicePrincipal("pods.eks.amazonaws.com")).with_conditions(
                {
                    "StringEquals": {
                        "aws:SourceAccount": Aws.ACCOUNT_ID,
                        "aws:RequestTag/eks-cluster-name": cluster.cluster_name,
                        "aws:RequestTag/kubernetes-namespace": namespace,
                        "aws:RequestTag/kubernetes-service-account": service_account,
                    }
                }
            ),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(n) for n in aws_managed_policy_names],
        )
        if statements:
            iam.ManagedPolicy(self, "Policy", roles=[self.role], statements=list(statements))
        self.association: eks.CfnPodIdentityAssociation | None = None
        if associate:
            self.association = eks.CfnPodIdentityAssociation(
                self,
                "Association",
                cluster_name=cluster.cluster_name,
                namespace=namespace,
                service_account=service_account,
                role_arn=self.role.role_arn,
            )


def named_secret_policy_arn(secret_arn: str) -> str:
    """The ARN pattern that matches a secret imported by name (`Secret.from_secret_name_v2`).

    Such a secret's `secret_arn` is partial: Secrets Manager appends six random characters to every
    secret's ARN, which IAM only matches with this suffix (Secrets Manager User Guide, auth-and-access
    examples, "wildcard for the random characters")."""
    return f"{secret_arn}-??????"
