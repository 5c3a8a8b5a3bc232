"""`genai-ops smoke`: one chat completion through the gateway, from the deployed stacks' outputs and the cluster,
printing each step as it goes.

The steps are the README's "From `cdk deploy` to a first completion" without kubectl, port-forwards or jq: the data
stack's `GatewayMasterKeySecret` output names the secret with the master key (read from Secrets Manager, never
printed), the gateway is reached through the API server's service proxy (or `--gateway-url`, e.g. the internal ALB
from a host in the VPC, whose address the Ingress shows), LiteLLM's readiness is asked first, then one completion.
A failed step ends the command with one message naming the step; the steps before it stay on screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ops import verify as verify_command
from ops.errors import BadInputError, OpsError
from ops.live import (
    EndpointError,
    HttpEndpoint,
    Kube,
    UrlEndpoint,
    chat_completion,
    gateway_master_key,
    stack_outputs,
    tunnel_url,
)
from ops.target import GATEWAY_ADDRESS_OUTPUT, LITELLM, LITELLM_SERVICE_PORT, MASTER_KEY_OUTPUT, load_platform_config
from ops.target import stack_name as stack_of
from ops.verify import (
    CdkJsonOption,
    EnvOption,
    GatewayUrlOption,
    KubeconfigOption,
    KubeContextOption,
    OverrideOption,
    RegionOption,
    TimeoutOption,
    TunnelOption,
    open_cluster,
)
from platform_config import namespaces as ns


class Steps:
    """Numbered lines on the console: what each step did, or why it stopped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0

    def done(self, what: str) -> None:
        self.number += 1
        self.console.print(Text(f"{self.number}. {what}", style="green"))

    def stop(self, what: str) -> OpsError:
        self.number += 1
        self.console.print(Text(f"{self.number}. {what}", style="bold red"))
        return OpsError(f"smoke test stopped at step {self.number}: {what}")


def _alb_address(kube: Kube) -> str | None:
    """The gateway Ingress' load balancer hostname (what the gateway stack's GatewayAddressCommand prints)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        ingress = client.NetworkingV1Api(kube.api_client).read_namespaced_ingress(
            LITELLM, ns.GATEWAY, _request_timeout=kube.timeout
        )
    except ApiException:
        return None
    points = (ingress.status.load_balancer.ingress if ingress.status and ingress.status.load_balancer else None) or []
    return next((p.hostname or p.ip for p in points if p.hostname or p.ip), None)


def smoke(
    env: EnvOption = "dev",
    overrides: OverrideOption = None,
    cdk_json: CdkJsonOption = Path("cdk.json"),
    region: RegionOption = None,
    kubeconfig: KubeconfigOption = None,
    kube_context: KubeContextOption = None,
    tunnel: TunnelOption = None,
    gateway_url: GatewayUrlOption = None,
    prompt: Annotated[str, typer.Option("--prompt", help="What to ask the model.")] = "Say hello.",
    timeout: TimeoutOption = 60.0,
) -> None:
    """One chat completion through the gateway, from the stacks' outputs and the cluster, each step printed.

    Reads the master key from Secrets Manager (never printed), reaches LiteLLM through the API server's service
    proxy (or --gateway-url), checks its readiness, then sends one completion. Exits 1 at the first failed step.
    """
    # soft_wrap: long lines (ARNs, addresses) stay whole for copying.
    console = Console(highlight=False, soft_wrap=True)
    steps = Steps(console)
    config = load_platform_config(env, overrides or [], cdk_json)
    if not config.gateway.enabled:
        raise BadInputError(f"--env {env}: gateway.enabled is false, so there is no gateway to send a completion to")
    direct = UrlEndpoint(gateway_url, timeout=timeout, option="--gateway-url") if gateway_url else None
    tunnel = tunnel_url(tunnel) if tunnel is not None else None
    aws = verify_command.make_aws_clients(region)

    gateway_outputs = stack_outputs(aws, stack_of(config, "gateway"))
    key, secret = gateway_master_key(aws, config)
    steps.done(f"stack outputs: {stack_of(config, 'data')} {MASTER_KEY_OUTPUT} = {secret}")
    steps.done(f"master key read from Secrets Manager ({len(key)} characters, not shown)")

    endpoint: HttpEndpoint
    if direct:
        endpoint = direct
        steps.done(f"gateway: {direct.description} (--gateway-url)")
    else:
        cluster, kube = open_cluster(
            config, aws, kubeconfig=kubeconfig, kube_context=kube_context, timeout=timeout, tunnel=tunnel
        )
        endpoint = kube.service(ns.GATEWAY, LITELLM, LITELLM_SERVICE_PORT)
        alb = _alb_address(kube)
        # With a certificate the ALB listens on HTTPS 443 only (k8s/gateway.py listen-ports), for the certificate's
        # domain, which the ALB's own hostname does not match: name that domain rather than the ALB.
        hint = (
            "--gateway-url https://<the certificate's domain, pointed at it>"
            if config.gateway.certificate_arn
            else f"--gateway-url http://{alb}"
        )
        where = (
            f"its internal ALB is {alb} (from inside the VPC: {hint})"
            if alb
            else f"no ALB address yet ({stack_of(config, 'gateway')} {GATEWAY_ADDRESS_OUTPUT}: "
            f"{gateway_outputs.get(GATEWAY_ADDRESS_OUTPUT, 'not found')})"
        )
        steps.done(f"gateway: {endpoint.description} on cluster {cluster['name']}; {where}")

    try:
        ready = endpoint.request("GET", "/health/readiness")
    except EndpointError as error:
        raise steps.stop(f"LiteLLM readiness: {error}") from None
    if ready.status != 200:
        raise steps.stop(f"LiteLLM is not ready: GET /health/readiness answered HTTP {ready.status} {ready.text()}")
    steps.done(f"LiteLLM ready: {ready.text()}")

    model = config.inference.vllm.served_model_name
    try:
        result = chat_completion(endpoint, model=model, key=key, prompt=prompt)
    except EndpointError as error:
        raise steps.stop(f"completion: {error}") from None
    if not result.ok:
        raise steps.stop(f"completion from {model}: HTTP {result.status} {result.reply}")
    steps.done(
        f"completion from {model} in {result.seconds:.2f} s ({result.completion_tokens} tokens): {result.reply!r}"
    )
