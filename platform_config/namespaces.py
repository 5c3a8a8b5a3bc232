"""The namespaces the platform creates, by role (config defaults, stacks and charts all use these)."""

INFERENCE = "inference"
GATEWAY = "gateway"
KEDA = "keda"
EXTERNAL_SECRETS = "external-secrets"
OBSERVABILITY = "observability"
# Every namespace the platform's own charts put workloads in.
PLATFORM = (INFERENCE, GATEWAY, KEDA, EXTERNAL_SECRETS, OBSERVABILITY)
