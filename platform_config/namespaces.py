"""The namespaces the platform creates, by role (config defaults, stacks and charts all use these)."""

INFERENCE = "inference"
GATEWAY = "gateway"
KEDA = "keda"
EXTERNAL_SECRETS = "external-secrets"
OBSERVABILITY = "observability"
# Created and owned by the amazon-cloudwatch-observability add-on (CloudWatch User Guide,
# install-CloudWatch-Observability-EKS-addon), not by the platform; its agent finds the DCGM exporter only here.
CLOUDWATCH = "amazon-cloudwatch"
# Every namespace the platform's own charts put workloads in.
PLATFORM = (INFERENCE, GATEWAY, KEDA, EXTERNAL_SECRETS, OBSERVABILITY)
# Self-hosted tracing (observability.tracing.mode self-hosted) only: the tracing stack creates these itself,
# Pod Security `restricted`, so that with tracing off none of them exists.
CERT_MANAGER = "cert-manager"
CLICKHOUSE_OPERATOR = "clickhouse-operator"
LANGFUSE = "langfuse"
TRACING = (CERT_MANAGER, CLICKHOUSE_OPERATOR, LANGFUSE)
