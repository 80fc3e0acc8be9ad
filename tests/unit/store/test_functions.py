"""The version document codec: runtime management survives a round trip; old documents are Auto."""

from __future__ import annotations

from lamina.model.function import CodeRef, FunctionConfig, RuntimeManagement, UpdateRuntimeOn
from lamina.store.functions import config_from_doc, config_to_doc


def _config(rm: RuntimeManagement) -> FunctionConfig:
    return FunctionConfig(name="f", runtime="python3.11", handler="app.handler", role="r",
                          code=CodeRef(sha256_hex="ab" * 32, size=3), revision_id="1", last_modified="t",
                          runtime_management=rm)  # fmt: skip


def test_runtime_management_round_trips() -> None:
    pinned = _config(RuntimeManagement(update_on=UpdateRuntimeOn.MANUAL, version_arn="arn:aws:lambda:us-east-1::runtime:" + "a" * 64))
    assert config_from_doc(config_to_doc(pinned)) == pinned


def test_documents_from_before_runtime_management_read_as_auto() -> None:
    doc = config_to_doc(_config(RuntimeManagement()))
    del doc["runtime_management"]
    assert config_from_doc(doc).runtime_management == RuntimeManagement(update_on=UpdateRuntimeOn.AUTO, version_arn=None)
