"""The two kinds of failure the CLI maps to exit code 2.

UserError: the input is wrong (say what to change). InfraError: something the rig needs broke
(say what). Both carry one line of text; the CLI prints it without a traceback unless --debug.
"""


class RigError(Exception):
    """Base class: the rig could not do its job."""


class UserError(RigError):
    """Bad input: a spec, a suite, an argument. The message names the file/field at fault."""


class InfraError(RigError):
    """Infrastructure trouble: a missing host tool, a download, QEMU, the guest."""


class MissingTool(InfraError):
    def __init__(self, tool: str, package: str):
        super().__init__(f"host tool '{tool}' not found: install it with 'apt-get install {package}'")
        self.tool = tool
        self.package = package
