"""RuntimeManagementConfigs: Put/GetRuntimeManagementConfig (spec 2.2, 10); no HTTP.

The setting lives on each version's configuration (`FunctionConfig.runtime_management`), so it is
stored with the version document and a published version keeps the mode and version it was
published with. For FunctionUpdate the configuration records the version that was current at the
last create or update (FunctionService moves it on update); for Manual, the pinned one.

Lamina checks a pinned ARN against the builds installed here: pinning a version this host does
not have is refused at once, and a pinned build removed later fails the cold starts that need it
(InvalidRuntimeException, see runtimes/versions.py), never silently runs another version.
"""

from __future__ import annotations

import re

from lamina.functions.service import FunctionService
from lamina.model.errors import InvalidParameterValueException
from lamina.model.function import FunctionConfig, RuntimeManagement, UpdateRuntimeOn
from lamina.model.ids import LATEST, VERSION_NUMBER, FunctionRef, validation_error
from lamina.runtimes.versions import RuntimeVersions

# botocore's RuntimeVersionArn pattern and length bounds.
_ARN = re.compile(r"^arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}::runtime:.+$")


class RuntimeManagementConfigs:
    def __init__(self, *, functions: FunctionService, versions: RuntimeVersions) -> None:
        self._functions = functions
        self._versions = versions

    def get(self, ref: FunctionRef) -> FunctionConfig:
        """The configuration whose setting applies ($LATEST or a published version)."""
        _check_qualifier(ref)
        return self._functions.get_config(ref)

    def version_arn(self, config: FunctionConfig) -> str | None:
        """RuntimeVersionConfig.RuntimeVersionArn: the version the next environment of `config`
        starts with (Auto: the newest installed; else the recorded or pinned one)."""
        rm = config.runtime_management
        if rm.update_on is UpdateRuntimeOn.AUTO or rm.version_arn is None:
            current = self._versions.current(config.runtime)
            return current.arn if current is not None else None
        return rm.version_arn

    def version_error(self, config: FunctionConfig) -> str | None:
        """Why the version RuntimeVersionConfig names cannot run here (a Manual pin whose build is
        gone), for RuntimeVersionConfig.Error; None when it can."""
        rm = config.runtime_management
        if rm.update_on is not UpdateRuntimeOn.MANUAL or rm.version_arn is None:
            return None
        if self._versions.find(config.runtime, rm.version_arn) is not None:
            return None
        return f"Runtime version {rm.version_arn} is not installed on this Lamina host; new environments cannot start."

    async def put(self, ref: FunctionRef, update_on: UpdateRuntimeOn, arn: str | None) -> FunctionConfig:
        _check_qualifier(ref)
        if arn is not None and not (26 <= len(arn) <= 2048 and _ARN.match(arn)):
            raise validation_error(arn, "runtimeVersionArn", f"Member must satisfy regular expression pattern: {_ARN.pattern[1:-1]}")
        if update_on is UpdateRuntimeOn.MANUAL and arn is None:
            raise InvalidParameterValueException("RuntimeVersionArn is required when UpdateRuntimeOn is Manual.")
        if update_on is not UpdateRuntimeOn.MANUAL and arn is not None:
            raise InvalidParameterValueException(
                f"RuntimeVersionArn can only be set with UpdateRuntimeOn Manual, not {update_on.value}."
            )
        await self._versions.look()
        async with self._functions.lock(ref.name):
            config = self._functions.get_config(ref)
            if update_on is UpdateRuntimeOn.MANUAL:
                assert arn is not None
                if self._versions.find(config.runtime, arn) is None:
                    installed = ", ".join(v.arn for v in self._versions.installed(config.runtime)) or "none"
                    raise InvalidParameterValueException(
                        f"Runtime version {arn} is not installed for {config.runtime} on this Lamina host. "
                        f"Installed versions: {installed}."
                    )
            elif update_on is UpdateRuntimeOn.FUNCTION_UPDATE:
                # From now on the function stays on the version it runs today, until its next update.
                current = self._versions.current(config.runtime)
                arn = current.arn if current is not None else None
            return await self._functions.set_runtime_management(config, RuntimeManagement(update_on=update_on, version_arn=arn))


def _check_qualifier(ref: FunctionRef) -> None:
    """$LATEST or a published version number (botocore: NumericLatestPublishedOrAliasQualifier)."""
    q = ref.qualifier
    if q is not None and q != LATEST and not VERSION_NUMBER.match(q):
        raise InvalidParameterValueException(
            f"Runtime management configuration applies to $LATEST or a published version, not alias {q}."
        )
