"""Settings read from the environment, once, by the entry points only."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DATA_DIR = "FLEETCAM_DATA_DIR"
ENV_HTTP_HOST = "FLEETCAM_HTTP_HOST"
ENV_HTTP_PORT = "FLEETCAM_HTTP_PORT"
ENV_ADMIN_TOKEN = "FLEETCAM_ADMIN_TOKEN"
ENV_MQTT_URL = "FLEETCAM_MQTT_URL"
ENV_MQTT_PORT = "FLEETCAM_MQTT_PORT"
ENV_TOPIC_PREFIX = "FLEETCAM_TOPIC_PREFIX"
ENV_PUBLIC_URL = "FLEETCAM_PUBLIC_URL"
ENV_SWEEP_INTERVAL = "FLEETCAM_SWEEP_INTERVAL"
ENV_INGEST_MAX_ATTEMPTS = "FLEETCAM_INGEST_MAX_ATTEMPTS"
ENV_DEFAULT_MEDIA_TTL = "FLEETCAM_DEFAULT_MEDIA_TTL"

DEFAULTS: dict[str, str] = {
    ENV_DATA_DIR: "./data",
    ENV_HTTP_HOST: "127.0.0.1",
    ENV_HTTP_PORT: "9080",
    ENV_ADMIN_TOKEN: "",
    ENV_MQTT_URL: "",
    ENV_MQTT_PORT: "1883",
    ENV_TOPIC_PREFIX: "fleetcam",
    ENV_PUBLIC_URL: "",
    ENV_SWEEP_INTERVAL: "60",
    ENV_INGEST_MAX_ATTEMPTS: "5",
    ENV_DEFAULT_MEDIA_TTL: str(30 * 86400),
}


@dataclass(frozen=True)
class Settings:
    """Everything an entry point needs to build the object graph."""

    data_dir: Path
    http_host: str = "127.0.0.1"
    http_port: int = 9080
    admin_token: str = ""
    mqtt_url: str = ""
    mqtt_port: int = 1883
    topic_prefix: str = "fleetcam"
    public_url: str = ""
    sweep_interval: float = 60.0
    ingest_max_attempts: int = 5
    default_media_ttl: int = 30 * 86400

    @property
    def base_url(self) -> str:
        """The URL prefix used in file links."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read the FLEETCAM_* variables, falling back to DEFAULTS."""
        env = dict(os.environ if environ is None else environ)

        def get(name: str) -> str:
            return env.get(name) or DEFAULTS[name]

        return cls(
            data_dir=Path(get(ENV_DATA_DIR)).expanduser().resolve(),
            http_host=get(ENV_HTTP_HOST),
            http_port=int(get(ENV_HTTP_PORT)),
            admin_token=get(ENV_ADMIN_TOKEN),
            mqtt_url=get(ENV_MQTT_URL),
            mqtt_port=int(get(ENV_MQTT_PORT)),
            topic_prefix=get(ENV_TOPIC_PREFIX).strip("/"),
            public_url=get(ENV_PUBLIC_URL),
            sweep_interval=float(get(ENV_SWEEP_INTERVAL)),
            ingest_max_attempts=int(get(ENV_INGEST_MAX_ATTEMPTS)),
            default_media_ttl=int(get(ENV_DEFAULT_MEDIA_TTL)),
        )
