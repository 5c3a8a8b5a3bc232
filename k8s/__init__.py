"""cdk8s charts and constructs: pure functions of typed props, testable without AWS."""
