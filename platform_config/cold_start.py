"""The cold-start budget of one vLLM replica on a new GPU node, with the source of every figure.

Three settings must outlast it (a test checks all three against the synthesized objects):
- the startup probe must allow the in-container part (weights + engine) or the kubelet kills a
  replica that is still loading;
- the HPA scale-down stabilization window and the gpu NodePool's consolidateAfter must outlast the
  whole budget, or a replica (or its node) can be removed while its replacement is still starting
  (superlinked/sie#293, FACTS.md "Autoscaling facts").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColdStartBudget:
    # Karpenter launches a node in 30-40 s typically, GPU types boot slower (aws/karpenter-provider-aws#6165).
    node_launch_seconds: int = 90
    # vllm/vllm-openai is ~12 GB compressed; AWS pulled an 8.8 GB vLLM image in 48 s with SOCI parallel
    # pull, on by default for Auto Mode GPU instances (EKS User Guide ml-inference; vllm#27154).
    image_pull_seconds: int = 90
    # 15 GB of weights: 4.9 s from S3 with the Run:ai streamer at concurrency 32 on g5
    # (run-ai/runai-model-streamer docs/src/benchmarks.md); budgeted 6x for smaller instances.
    weights_seconds: int = 30
    # Engine start: torch.compile takes 50-80 s on a first start (node-local cache empty on a new
    # node), 4-6 s with the cache (EKS User Guide ml-inference-fast-model-loading); CUDA graphs on top.
    engine_seconds: int = 90

    @property
    def in_container_seconds(self) -> int:
        """From container start to ready: what the startup probe must allow."""
        return self.weights_seconds + self.engine_seconds

    @property
    def total_seconds(self) -> int:
        """From a scale-out decision on an empty pool to a ready replica."""
        return self.node_launch_seconds + self.image_pull_seconds + self.in_container_seconds


COLD_START = ColdStartBudget()
