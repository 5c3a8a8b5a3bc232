"""The operations toolkit, `genai-ops`: prove the deployed platform works, watch it scale, price it, tear it down.

Every subcommand lives in its own module and is registered in `ops.cli`. AWS calls go through boto3, Kubernetes
calls through the `kubernetes` client; nothing here changes the platform unless a command says so and is given
`--yes`.
"""
