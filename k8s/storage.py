"""The cluster's default StorageClass: EKS Auto Mode creates none (EKS User Guide, create-storage-class)."""

from __future__ import annotations

from collections.abc import Mapping

import cdk8s
from cdk8s_plus_30 import k8s
from constructs import Construct

# Auto Mode's built-in EBS CSI driver; the self-managed driver's name (ebs.csi.aws.com) does not work here.
AUTO_MODE_EBS_PROVISIONER = "ebs.csi.eks.amazonaws.com"
DEFAULT_STORAGE_CLASS = "gp3-encrypted"


class PlatformStorageChart(cdk8s.Chart):
    """gp3 volumes encrypted with the node-volume key (its policy already admits the cluster role)."""

    def __init__(
        self, scope: Construct, id: str, *, kms_key_arn: str, retain_volumes: bool, labels: Mapping[str, str]
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        k8s.KubeStorageClass(
            self,
            "gp3-encrypted",
            metadata=k8s.ObjectMeta(
                name=DEFAULT_STORAGE_CLASS,
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
            ),
            provisioner=AUTO_MODE_EBS_PROVISIONER,
            parameters={"type": "gp3", "encrypted": "true", "kmsKeyId": kms_key_arn},
            # Bind where the pod is scheduled, so the volume lands in the pod's zone.
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Retain" if retain_volumes else "Delete",
        )
