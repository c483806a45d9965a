"""Run moto's HTTP server as a subprocess on 127.0.0.1 (reusable by any test package)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
"""Credentials and region for clients of the fake server (never real ones)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(port: int, txfix: bool = False) -> list[str]:
    if txfix:  # moto with transactions that back up their items, not whole tables
        return [sys.executable, str(Path(__file__).with_name("moto_txfix.py")),
                "-H", "127.0.0.1", "-p", str(port)]
    exe = Path(sys.executable).with_name("moto_server")
    found = str(exe) if exe.exists() else shutil.which("moto_server")
    head = [found] if found else [sys.executable, "-m", "moto.server"]
    return [*head, "-H", "127.0.0.1", "-p", str(port)]


class MotoServer:
    """``moto_server`` on a free port; ``url`` is the endpoint every client uses."""

    def __init__(self, port: int | None = None, *, txfix: bool = False) -> None:
        self.port = port or free_port()
        self.txfix = txfix
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> MotoServer:
        env = {**os.environ, **DUMMY_ENV}
        self.proc = subprocess.Popen(_command(self.port, self.txfix), env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url} within {timeout}s")

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=5).close()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """Start a server, yield it, stop it."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


BUCKET = "fleetcam-media"



def _create_tables(conn: Any, names: dict[str, str]) -> None:
    """As models.create_tables(), over one connection and without its polling (moto's
    tables are ACTIVE at once): a boto3 client per model costs ~0.1 s each."""
    from fleetcam.adapters.aws import models

    for model in models.MODELS:
        schema = model._get_schema()
        conn.create_table(names[model.__name__], billing_mode="PAY_PER_REQUEST",
                          attribute_definitions=schema["attribute_definitions"],
                          key_schema=schema["key_schema"],
                          global_secondary_indexes=schema["global_secondary_indexes"] or None)


def client_kwargs(url: str, region: str = "us-east-1") -> dict[str, str]:
    """boto3.client() arguments for the fake server, with its dummy credentials."""
    return {"endpoint_url": url, "region_name": region,
            "aws_access_key_id": DUMMY_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": DUMMY_ENV["AWS_SECRET_ACCESS_KEY"]}


_clients: dict[tuple[str, str], Any] = {}


def _cached(kind: str, url: str, region: str) -> Any:
    """One S3 client and one PynamoDB connection per server: each costs ~0.1 s to build."""
    if (kind, url + region) not in _clients:
        if kind == "s3":
            import boto3
            from botocore.config import Config

            made: Any = boto3.client("s3", config=Config(signature_version="s3v4"),
                                     **client_kwargs(url, region))
        else:
            from pynamodb.connection import Connection

            made = Connection(region=region, host=url)
        _clients[kind, url + region] = made
    return _clients[kind, url + region]


def s3_client(url: str, region: str = "us-east-1") -> Any:
    """A (cached) S3 client of the server at ``url``."""
    return _cached("s3", url, region)


def provision_storage(url: str, *, region: str = "us-east-1", bucket: str = BUCKET,
                      prefix: str = "fleetcam-") -> dict[str, str]:
    """Create the bucket and every table (named ``prefix`` + model) on the server at ``url``
    and bind the PynamoDB models to them; return the table names by model name."""
    from fleetcam.adapters.aws import models

    tables = {m.__name__: prefix + m.__name__.removesuffix("Model").lower()
              for m in models.MODELS}
    s3_client(url, region).create_bucket(Bucket=bucket)
    models.bind(tables, region=region, host=url)
    _create_tables(_cached("dynamodb", url, region), tables)
    return tables


def provision(url: str, *, region: str = "us-east-1") -> dict[str, str]:
    """Create fleetcam's bucket, tables and queues on the server at ``url``; return the
    FLEETCAM_* variables (as template.yaml sets them) that point a container at them."""
    import boto3

    from fleetcam import config

    tables = provision_storage(url, region=region)
    kw = client_kwargs(url, region)
    sqs = boto3.client("sqs", **kw)
    dlq = sqs.create_queue(QueueName="fleetcam-ingest-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": "5"}
    queue = sqs.create_queue(QueueName="fleetcam-ingest",
                             Attributes={"RedrivePolicy": json.dumps(redrive)})["QueueUrl"]
    env = {name: tables[model] for model, name in config.AWS_TABLE_ENVS.items()}
    env.update({config.ENV_MEDIA_BUCKET: BUCKET, config.ENV_INGEST_QUEUE_URL: queue,
                config.ENV_INGEST_DLQ_URL: dlq, config.ENV_AWS_ENDPOINT_URL: url,
                config.ENV_AWS_REGION: region})
    return env
