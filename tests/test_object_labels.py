"""Every object the platform's charts make carries Kubernetes' recommended labels `app.kubernetes.io/part-of`
(the platform's name) and `app.kubernetes.io/managed-by` (Kubernetes docs, "Recommended Labels"), so
`kubectl get <kind> -A -l app.kubernetes.io/part-of=genai` lists what the platform made, and a person can
tell those objects from ones applied by hand. Session synths (dev and prod, every chart)."""

from __future__ import annotations

from tests.conftest import Synthesized

PLATFORM_LABELS = {"app.kubernetes.io/part-of": "genai", "app.kubernetes.io/managed-by": "cdk8s"}


def test_every_object_carries_the_platform_labels(dev: Synthesized, prod: Synthesized) -> None:
    for synth in (dev, prod):
        documents = synth.documents()
        assert len(documents) > 30
        for doc in documents:
            labels = doc["metadata"].get("labels", {})
            where = f"{synth.config.env_name}: {doc['kind']} {doc['metadata']['name']}"
            assert PLATFORM_LABELS.items() <= labels.items(), where
