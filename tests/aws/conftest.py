"""Each test: fresh resources on the session's moto server (tests/conftest.py) and env."""
from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.aws.motoserver import DUMMY_ENV, MotoServer, provision

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TOKEN = "fleetcam-example-admin-token-for-sam-local-invoke-0000000000000"
"""The token in events/api-get-media.json (sam local invoke uses it too)."""


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


@dataclass
class LambdaContext:
    function_name: str = "fleetcam-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fleetcam-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Aws:
    """The fake account of one test: endpoint, resource names and clients."""

    url: str
    env: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")

    @property
    def bucket(self) -> str:
        return self.env["FLEETCAM_MEDIA_BUCKET"]


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """Fresh bucket, tables and queues, and the environment template.yaml gives functions."""
    moto.reset()
    for k, v in DUMMY_ENV.items():
        monkeypatch.setenv(k, v)
    env = provision(moto.url)
    env.update({"FLEETCAM_ADMIN_TOKEN": TOKEN, "FLEETCAM_DEFAULT_MEDIA_TTL": "0",
                "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_SERVICE_NAME": "fleetcam",
                "POWERTOOLS_METRICS_NAMESPACE": "fleetcam", "POWERTOOLS_DEV": "false"})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("FLEETCAM_PUBLIC_URL", "FLEETCAM_IOT_ENDPOINT", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    return Aws(moto.url, env)


@pytest.fixture
def load_handler(aws: Aws) -> Callable[[str], ModuleType]:
    """Import functions/<name>/app.py afresh, so its CONTAINER binds to this test's moto."""

    def load(name: str) -> ModuleType:
        mod_name = f"fleetcam_function_{name}"
        path = ROOT / "functions" / name / "app.py"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
