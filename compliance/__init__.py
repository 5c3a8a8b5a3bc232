"""Compliance: cdk-nag packs, the platform's own EKS checks, narrow acknowledgments and their report."""
