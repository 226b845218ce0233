"""The errors users see.

Every error is one line: what is wrong, then how to fix it. The CLI prints `str(error)` and
exits with `error.exit_code`; `--debug` adds the traceback. Exit code 2 means the input was
wrong (a usage or input error); 1 means the input was fine and something failed at run time.
"""

from __future__ import annotations


class DeployError(Exception):
    """Base class: a message, an optional hint, and an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class InputError(DeployError):
    """The user's input (arguments, files) is wrong. Exit code 2."""

    exit_code = 2


class CatalogError(InputError):
    """An unknown model or GPU, or a malformed profile or config.json."""


class HardwareError(InputError):
    """Hardware could not be detected or a cluster file is wrong."""


class PlanError(InputError):
    """The request cannot be planned: it does not fit, or a pin breaks a rule."""


class FlagError(InputError):
    """A rendered or user-supplied engine flag is not accepted by the target engine version."""


class DockerUnavailableError(InputError):
    """A Docker endpoint cannot be reached."""


class RuntimeFailure(DeployError):
    """Something failed while running a deployment (a service gave up, a probe timed out)."""


class BenchError(InputError):
    """A benchmark cannot run: bad URL, dataset or levels."""
