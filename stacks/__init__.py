"""CDK stacks, one per lifecycle. A stack composes constructs and wires them together."""
