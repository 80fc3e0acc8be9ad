"""The AWS SDK the managed Python runtimes carry (lamina/runtimes/sdk.py), through real boto3.

Functions import boto3 without packaging it; the version is the pinned one; a copy of the
function's own wins (it comes first on sys.path, as on Lambda). (Calling Lamina's own API with it
from inside is not possible by design: `outbound` sandboxes never reach the host, test_network.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lamina.runtimes.catalog import RuntimeCatalog
from lamina.runtimes.sdk import REQUIREMENTS_DIR, SdkCatalog, set_name
from lamina.testing import deploy, isolation_for_tests, running_server

PYTHON_RUNTIMES = [
    pytest.param(r, id=r.replace(".", ""))
    for r in RuntimeCatalog.discover(shared_paths_only=isolation_for_tests() == "sandbox").available
    if r.startswith("python3.")
]

WHICH_BOTO3 = """
import sys
def handler(event, context):
    import boto3, botocore
    return {"boto3": boto3.__version__, "botocore": botocore.__version__, "file": boto3.__file__,
            "path_end": sys.path[-1]}
"""


def pinned(runtime: str, package: str) -> str:
    """The version a requirements file of lamina/runtimes/sdk_requirements pins."""
    name = set_name(runtime)
    assert name is not None
    for line in (REQUIREMENTS_DIR / f"{name}.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{package} is not pinned for {runtime}")


def call(client: Any, name: str, event: Any = None) -> Any:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}))
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


@pytest.mark.parametrize("runtime", PYTHON_RUNTIMES)
def test_boto3_without_packaging_it(lambda_client: Any, fname: str, runtime: str) -> None:
    deploy(lambda_client, fname, {"app.py": WHICH_BOTO3}, runtime=runtime)
    got = call(lambda_client, fname)
    assert got["boto3"] == pinned(runtime, "boto3")
    assert got["botocore"] == pinned(runtime, "botocore")
    # The SDK is the last entry of sys.path, and the platform's variable is not visible.
    assert got["file"].startswith(got["path_end"] + "/")


def test_sdk_is_not_imported_before_the_handler_asks(lambda_client: Any, fname: str) -> None:
    src = "import sys, os\ndef handler(event, context):\n    return [m for m in ('boto3', 'botocore', 'urllib3') if m in sys.modules] + [k for k in os.environ if 'SDK' in k]\n"
    deploy(lambda_client, fname, {"app.py": src})
    assert call(lambda_client, fname) == []


def test_the_functions_own_boto3_wins(lambda_client: Any, fname: str) -> None:
    files = {"app.py": WHICH_BOTO3.replace(", botocore", "").replace('botocore.__version__', '"-"'),
             "boto3/__init__.py": "__version__ = '0.0-own'\n"}  # fmt: skip
    deploy(lambda_client, fname, files)
    got = call(lambda_client, fname)
    assert got["boto3"] == "0.0-own"
    assert got["file"].endswith("/boto3/__init__.py") and not got["file"].startswith(got["path_end"])


def test_sdk_catalog_names_the_installed_versions() -> None:
    sdk = SdkCatalog.discover().for_runtime("python3.11")
    assert sdk is not None, "scripts/setup.sh installs the SDK"
    assert sdk.package_version("boto3") == pinned("python3.11", "boto3")
    assert f"boto3/{pinned('python3.11', 'boto3')}" in sdk.version.split()
    assert len(sdk.digest) == 16
    assert SdkCatalog.discover().for_runtime("provided.al2023") is None


def test_server_starts_without_an_sdk(data_dir: Path, tmp_path: Path) -> None:
    """No SDK installed: the server says so and runs; functions that import boto3 fail to import."""
    with running_server(data_dir, env={"LAMINA_SDK_DIR": str(tmp_path / "none")}) as srv:
        assert any("no AWS SDK installed for" in line and "python3.11" in line for line in srv.output)
        client = srv.client()
        deploy(client, "needs-boto3", {"app.py": "import boto3\ndef handler(event, context):\n    return 1\n"})
        resp = client.invoke(FunctionName="needs-boto3")
        body = json.loads(resp["Payload"].read())
        assert (resp["FunctionError"], body["errorType"]) == ("Unhandled", "Runtime.ImportModuleError")
        assert body["errorMessage"] == "Unable to import module 'app': No module named 'boto3'"
        deploy(client, "plain", {"app.py": "def handler(event, context):\n    return 2\n"})
        assert call(client, "plain") == 2
