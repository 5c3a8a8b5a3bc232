"""Typed, validated platform configuration: built once from cdk.json context, read everywhere."""

from platform_config.delivery import DeliverySettings
from platform_config.loader import (
    ConfigError,
    cdk_cli_context,
    cdk_json_context,
    load_config,
    load_delivery_settings,
)
from platform_config.model import PlatformConfig

__all__ = [
    "ConfigError",
    "DeliverySettings",
    "PlatformConfig",
    "cdk_cli_context",
    "cdk_json_context",
    "load_config",
    "load_delivery_settings",
]
