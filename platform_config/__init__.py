"""Typed, validated platform configuration: built once from cdk.json context, read everywhere."""

from platform_config.loader import ConfigError, load_config
from platform_config.model import PlatformConfig

__all__ = ["ConfigError", "PlatformConfig", "load_config"]
