"""How a command fails: one sentence, a non-zero exit, never a traceback."""

from __future__ import annotations


class OpsError(Exception):
    """A failure the person running the command can act on; its message is the whole report.

    `exit_code` 2 is a usage problem (bad input), 1 a failed run or check.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BadInputError(OpsError):
    """An argument or input file that cannot be used: the message names it, its value and what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


def aws_error_code(error: BaseException) -> str:
    """The error code an AWS API answered with (botocore's ClientError carries it in `response`), else ''."""
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def aws_error_message(error: BaseException) -> str:
    """`Code: Message` of an AWS API's answer, for a one-line report."""
    details = (getattr(error, "response", None) or {}).get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message', str(error))}"
