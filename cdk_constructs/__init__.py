"""Reusable AWS constructs of the platform, one per concern.

Named `cdk_constructs` because a top-level package called `constructs` would shadow the `constructs`
library that aws-cdk-lib imports.
"""
