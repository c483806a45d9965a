"""Settings read from the environment, once, by the entry points only."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ENV_DATA_DIR = "FLEETCAM_DATA_DIR"
ENV_HTTP_HOST = "FLEETCAM_HTTP_HOST"
ENV_HTTP_PORT = "FLEETCAM_HTTP_PORT"
ENV_ADMIN_TOKEN = "FLEETCAM_ADMIN_TOKEN"
ENV_ADMIN_TOKEN_SECRET = "FLEETCAM_ADMIN_TOKEN_SECRET"
ENV_REALTIME_WAIT_MAX = "FLEETCAM_REALTIME_WAIT_MAX"
"""Seconds a real-time command may hold its HTTP request at most (0: its own timeout); on
AWS below API Gateway's 29 s: past it the command stays queued and the caller is told."""
"""AWS: the ARN of the Secrets Manager secret holding the admin token, read at cold start
(the token itself is never in a function's or task's environment)."""
ENV_MQTT_URL = "FLEETCAM_MQTT_URL"
ENV_MQTT_PORT = "FLEETCAM_MQTT_PORT"
ENV_MQTT_MAX_SESSIONS = "FLEETCAM_MQTT_MAX_SESSIONS"
ENV_TOPIC_PREFIX = "FLEETCAM_TOPIC_PREFIX"
ENV_PUBLIC_URL = "FLEETCAM_PUBLIC_URL"
ENV_SWEEP_INTERVAL = "FLEETCAM_SWEEP_INTERVAL"
ENV_INGEST_MAX_ATTEMPTS = "FLEETCAM_INGEST_MAX_ATTEMPTS"
ENV_DEFAULT_MEDIA_TTL = "FLEETCAM_DEFAULT_MEDIA_TTL"
ENV_MESSAGES_TTL = "FLEETCAM_MESSAGES_TTL"
ENV_LOG_TTL = "FLEETCAM_LOG_TTL"
ENV_JT808_PORT = "FLEETCAM_JT808_PORT"
ENV_JT1078_PORT = "FLEETCAM_JT1078_PORT"
ENV_GATEWAY_HOST = "FLEETCAM_GATEWAY_HOST"
ENV_MEDIA_HOST = "FLEETCAM_MEDIA_HOST"
ENV_AUTO_REGISTER = "FLEETCAM_AUTO_REGISTER"
ENV_IDLE_TIMEOUT = "FLEETCAM_IDLE_TIMEOUT"
ENV_MEDIA_PORT = "FLEETCAM_MEDIA_PORT"
ENV_GATEWAY_LEASE = "FLEETCAM_GATEWAY_LEASE"
ENV_ATTACHMENT_PORT = "FLEETCAM_ATTACHMENT_PORT"
ENV_TELTONIKA_PORT = "FLEETCAM_TELTONIKA_PORT"
ENV_TELTONIKA_CAMERA_PORT = "FLEETCAM_TELTONIKA_CAMERA_PORT"
ENV_ATTACHMENT_PUBLIC_PORT = "FLEETCAM_ATTACHMENT_PUBLIC_PORT"
ENV_ATTACHMENT_MAX_FILE = "FLEETCAM_ATTACHMENT_MAX_FILE"
ENV_ATTACHMENT_MEMORY = "FLEETCAM_ATTACHMENT_MEMORY"
ENV_ATTACHMENT_TIMEOUT = "FLEETCAM_ATTACHMENT_TIMEOUT"
ENV_MEDIA_SAME_ADDRESS = "FLEETCAM_MEDIA_SAME_ADDRESS"
ENV_MEDIA_ENRICH = "FLEETCAM_MEDIA_ENRICH"
ENV_EMF_METRICS = "FLEETCAM_EMF_METRICS"
ENV_SHARE_LINK_EXPIRY = "FLEETCAM_SHARE_LINK_EXPIRY"
ENV_PREAUTH_TIMEOUT = "FLEETCAM_PREAUTH_TIMEOUT"
ENV_AUTO_REGISTER_LIMIT = "FLEETCAM_AUTO_REGISTER_LIMIT"
ENV_AUTH_FAILURE_LIMIT = "FLEETCAM_AUTH_FAILURE_LIMIT"
ENV_MAX_CONNECTIONS = "FLEETCAM_MAX_CONNECTIONS"
ENV_MAX_CONNECTIONS_PER_ADDRESS = "FLEETCAM_MAX_CONNECTIONS_PER_ADDRESS"
ENV_REASSEMBLY_MEMORY = "FLEETCAM_REASSEMBLY_MEMORY"
ENV_MAX_JSON_BODY = "FLEETCAM_MAX_JSON_BODY"
ENV_DVR_ROOTS = "FLEETCAM_DVR_ROOTS"
ENV_DVR_EXPORT_ROOTS = "FLEETCAM_DVR_EXPORT_ROOTS"
ENV_DVR_BUCKETS = "FLEETCAM_DVR_BUCKETS"
ENV_DVR_OBJECT_SECONDS = "FLEETCAM_DVR_OBJECT_SECONDS"
ENV_LOG_LEVEL = "FLEETCAM_LOG_LEVEL"
ENV_CORS_ORIGINS = "FLEETCAM_CORS_ORIGINS"
ENV_MEDIA_SHARED = "FLEETCAM_MEDIA_SHARED"
ENV_PUBLIC_MQTT_WS = "FLEETCAM_PUBLIC_MQTT_WS"
ENV_REGION_NAME = "FLEETCAM_REGION_NAME"
# the AWS runtime (template.yaml sets these on every function and the gateway task)
ENV_MEDIA_BUCKET = "FLEETCAM_MEDIA_BUCKET"
ENV_DEVICES_TABLE = "FLEETCAM_DEVICES_TABLE"
ENV_IDENTS_TABLE = "FLEETCAM_IDENTS_TABLE"
ENV_MEDIA_TABLE = "FLEETCAM_MEDIA_TABLE"
ENV_LOGS_TABLE = "FLEETCAM_LOGS_TABLE"
ENV_GC_TABLE = "FLEETCAM_GC_TABLE"
ENV_MESSAGES_TABLE = "FLEETCAM_MESSAGES_TABLE"
ENV_CONNECTIONS_TABLE = "FLEETCAM_CONNECTIONS_TABLE"
ENV_COMMANDS_TABLE = "FLEETCAM_COMMANDS_TABLE"
ENV_RULES_TABLE = "FLEETCAM_RULES_TABLE"
ENV_MEDIA_REQUESTS_TABLE = "FLEETCAM_MEDIA_REQUESTS_TABLE"
ENV_TOKENS_TABLE = "FLEETCAM_TOKENS_TABLE"
ENV_SHARES_TABLE = "FLEETCAM_SHARES_TABLE"
ENV_DVR_STREAMS_TABLE = "FLEETCAM_DVR_STREAMS_TABLE"
ENV_DVR_SEGMENTS_TABLE = "FLEETCAM_DVR_SEGMENTS_TABLE"
ENV_DVR_EPISODES_TABLE = "FLEETCAM_DVR_EPISODES_TABLE"
ENV_DVR_GC_TABLE = "FLEETCAM_DVR_GC_TABLE"
ENV_INGEST_QUEUE_URL = "FLEETCAM_INGEST_QUEUE_URL"
ENV_INGEST_DLQ_URL = "FLEETCAM_INGEST_DLQ_URL"
ENV_DVR_EXPORT_QUEUE_URL = "FLEETCAM_DVR_EXPORT_QUEUE_URL"
"""AWS: background DVR exports are queued here for the export function (empty: a thread)."""
ENV_IOT_ENDPOINT = "FLEETCAM_IOT_ENDPOINT"
ENV_AWS_ENDPOINT_URL = "FLEETCAM_AWS_ENDPOINT_URL"
ENV_AWS_REGION = "AWS_REGION"
AWS_TABLE_ENVS = {"DevicesModel": ENV_DEVICES_TABLE, "IdentsModel": ENV_IDENTS_TABLE,
                  "MediaModel": ENV_MEDIA_TABLE, "LogsModel": ENV_LOGS_TABLE,
                  "GcModel": ENV_GC_TABLE, "MessagesModel": ENV_MESSAGES_TABLE,
                  "ConnectionsModel": ENV_CONNECTIONS_TABLE, "CommandsModel": ENV_COMMANDS_TABLE,
                  "RulesModel": ENV_RULES_TABLE, "TokensModel": ENV_TOKENS_TABLE,
                  "SharesModel": ENV_SHARES_TABLE,
                  "MediaRequestsModel": ENV_MEDIA_REQUESTS_TABLE,
                  "DvrStreamsModel": ENV_DVR_STREAMS_TABLE,
                  "DvrSegmentsModel": ENV_DVR_SEGMENTS_TABLE,
                  "DvrEpisodesModel": ENV_DVR_EPISODES_TABLE, "DvrGcModel": ENV_DVR_GC_TABLE}

DEFAULTS: dict[str, str] = {
    ENV_DATA_DIR: "",
    ENV_HTTP_HOST: "127.0.0.1",
    ENV_HTTP_PORT: "9080",
    ENV_ADMIN_TOKEN: "",
    ENV_ADMIN_TOKEN_SECRET: "",
    ENV_REALTIME_WAIT_MAX: "0",
    ENV_MQTT_URL: "",
    ENV_MQTT_PORT: "1883",
    ENV_MQTT_MAX_SESSIONS: "1000",
    ENV_TOPIC_PREFIX: "fleetcam",
    ENV_PUBLIC_URL: "",
    ENV_SWEEP_INTERVAL: "60",
    ENV_INGEST_MAX_ATTEMPTS: "5",
    ENV_DEFAULT_MEDIA_TTL: str(30 * 86400),
    ENV_MESSAGES_TTL: str(30 * 86400),
    ENV_LOG_TTL: str(30 * 86400),
    ENV_JT808_PORT: "6808",
    ENV_JT1078_PORT: "7078",
    ENV_GATEWAY_HOST: "0.0.0.0",
    ENV_MEDIA_HOST: "",
    ENV_AUTO_REGISTER: "0",
    ENV_IDLE_TIMEOUT: "180",
    ENV_MEDIA_PORT: "0",
    ENV_GATEWAY_LEASE: "45",
    ENV_ATTACHMENT_PORT: "7208",
    ENV_TELTONIKA_PORT: "5027",
    ENV_TELTONIKA_CAMERA_PORT: "5028",
    ENV_ATTACHMENT_PUBLIC_PORT: "0",
    ENV_ATTACHMENT_MAX_FILE: str(64 * 1024 * 1024),
    ENV_ATTACHMENT_MEMORY: str(256 * 1024 * 1024),
    ENV_ATTACHMENT_TIMEOUT: "300",
    ENV_MEDIA_SAME_ADDRESS: "1",
    ENV_MEDIA_ENRICH: "1",
    ENV_EMF_METRICS: "0",
    ENV_SHARE_LINK_EXPIRY: "3600",
    ENV_PREAUTH_TIMEOUT: "30",
    ENV_AUTO_REGISTER_LIMIT: "60",
    ENV_AUTH_FAILURE_LIMIT: "10",
    ENV_MAX_CONNECTIONS: "100000",
    ENV_MAX_CONNECTIONS_PER_ADDRESS: "1000",
    ENV_REASSEMBLY_MEMORY: str(256 * 1024 * 1024),
    ENV_MAX_JSON_BODY: str(1024 * 1024),
    ENV_DVR_ROOTS: "",
    ENV_DVR_EXPORT_ROOTS: "",
    ENV_DVR_BUCKETS: "",
    ENV_DVR_OBJECT_SECONDS: "600",
    ENV_LOG_LEVEL: "INFO",
    ENV_CORS_ORIGINS: "*",
    ENV_MEDIA_SHARED: "1",
    ENV_PUBLIC_MQTT_WS: "",
    ENV_REGION_NAME: "fleetcam",
    ENV_MEDIA_BUCKET: "",
    ENV_INGEST_QUEUE_URL: "",
    ENV_INGEST_DLQ_URL: "",
    ENV_DVR_EXPORT_QUEUE_URL: "",
    ENV_IOT_ENDPOINT: "",
    ENV_AWS_ENDPOINT_URL: "",
    ENV_AWS_REGION: "us-east-1",
}


DATA_DB_NAME = "fleetcam.sqlite3"
"""The file that marks a folder as a fleetcam data folder."""
LEGACY_DATA_DIR = Path("data")
"""``./data``: where installs before the per-user default kept their data."""


def user_data_dir(env: dict[str, str], home: Path | None = None) -> Path:
    """The per-user default: ``$XDG_DATA_HOME/fleetcam``, else ``~/.local/share/fleetcam``."""
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "fleetcam"
    if home is None:
        try:
            home = Path.home()
        except (RuntimeError, KeyError):  # a container user with no home (Lambda, ECS)
            return Path(tempfile.gettempdir()) / "fleetcam"
    return home / ".local" / "share" / "fleetcam"


def find_data_dir(env: dict[str, str], *, cwd: Path | None = None,
                  home: Path | None = None) -> tuple[Path, str]:
    """Where the data folder is, and why that one (for the "data folder: ..." line).

    ``FLEETCAM_DATA_DIR`` wins; else ``./data`` if it holds a fleetcam database (an install
    from before the per-user default); else the per-user default. Nothing is created here.
    """
    if env.get(ENV_DATA_DIR):
        return Path(env[ENV_DATA_DIR]).expanduser().resolve(), f"from {ENV_DATA_DIR}"
    legacy = (cwd or Path.cwd()) / LEGACY_DATA_DIR
    if (legacy / DATA_DB_NAME).is_file():
        return legacy.resolve(), "./data of an existing install"
    return user_data_dir(env, home), "the per-user default"


MAX_SHARE_LINK_EXPIRY = 604800
"""SigV4 pre-signed URLs live at most 7 days."""


def _expiry(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_SHARE_LINK_EXPIRY:
        raise ValueError(f"{ENV_SHARE_LINK_EXPIRY} must be 1 to {MAX_SHARE_LINK_EXPIRY} seconds")
    return value


def _retention(value: str, name: str) -> int:
    """Seconds of a retention setting: a whole number from 0 (keep forever) to ten years."""
    try:
        seconds = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds <= 10 * 365 * 86400:
        raise ValueError(f"{name} must be from 0 (keep forever) to 315360000 seconds")
    return seconds


@dataclass(frozen=True)
class Settings:
    """Everything an entry point needs to build the object graph."""

    data_dir: Path
    data_dir_source: str = ""
    """Why ``data_dir`` is that folder (see find_data_dir); empty when set by the caller."""
    http_host: str = "127.0.0.1"
    http_port: int = 9080
    admin_token: str = ""
    admin_token_secret: str = ""
    realtime_wait_max: float = 0.0
    mqtt_url: str = ""
    mqtt_port: int = 1883
    mqtt_max_sessions: int = 1000
    topic_prefix: str = "fleetcam"
    public_url: str = ""
    sweep_interval: float = 60.0
    ingest_max_attempts: int = 5
    default_media_ttl: int = 30 * 86400
    messages_ttl: int = 30 * 86400
    """Seconds device messages are kept (0: forever); new devices' ``messages_ttl``."""
    log_ttl: int = 30 * 86400
    """Seconds device log entries (``media_file_*``, connections, commands) are kept (0: forever)."""
    jt808_port: int = 6808
    jt1078_port: int = 7078
    gateway_host: str = "0.0.0.0"
    media_host: str = ""
    """The address devices are told to send media to (0x9101/0x9201); default: this host."""
    media_port: int = 0
    """The media port devices are told (the load balancer's); 0: this copy's JT/T 1078 port."""
    gateway_lease: float = 45.0
    """Seconds a gateway copy's connections stay live without its renewal (every third of it)."""
    attachment_port: int = 7208
    """Port of the alarm-attachment server (T/JSATL12 0x9208 names it to devices)."""
    teltonika_port: int = 5027
    """Teltonika trackers' telemetry and commands (Codec 8/8E/12)."""
    teltonika_camera_port: int = 5028
    """Teltonika DualCam/DashCam camera connections (photos and videos)."""
    attachment_public_port: int = 0
    """The attachment port devices are told (the load balancer's); 0: this copy's."""
    attachment_max_file: int = 64 * 1024 * 1024
    """Largest alarm attachment file accepted, in bytes."""
    attachment_memory: int = 256 * 1024 * 1024
    """Bytes all attachment connections together may hold in files being received."""
    attachment_timeout: float = 300.0
    """Seconds an attachment connection may last before it is closed (a stalled upload)."""
    media_same_address: bool = True
    """A media connection must come from the address of the device's signalling connection."""
    auto_register: bool = False
    idle_timeout: float = 180.0
    media_enrich: bool = True
    emf_metrics: bool = False
    """Print connection counts as CloudWatch embedded metrics (the ECS gateway sets it)."""
    """Merge the device's telemetry nearest a media file's time into its message."""
    share_link_expiry: int = 3600
    """Lifetime in seconds of pre-signed object links (S3 allows at most 604800)."""
    preauth_timeout: float = 30.0
    """Seconds a device connection has to authenticate (JT/T 808 0x0102) before it is closed."""
    auto_register_limit: int = 60
    """Auto-registrations a minute per gateway process (a tenth of it per source address)."""
    auth_failure_limit: int = 10
    """Failed authentications/registrations a minute per source address before that address
    is refused without checking."""
    max_connections: int = 100000
    """Device connections (both ports) per gateway process; 0 = no cap but the fd limit."""
    max_connections_per_address: int = 1000
    """Device connections from one source address; 0 = no cap."""
    reassembly_memory: int = 256 * 1024 * 1024
    """Bytes all connections together may hold in unfinished JT/T 808 subpackaged messages."""
    max_json_body: int = 1024 * 1024
    """Largest JSON request body the REST API parses (413 above)."""
    dvr_roots: tuple[str, ...] = ()
    """Folders an absolute local ``dvr.root`` may be under (``:``-separated)."""
    dvr_export_roots: tuple[str, ...] = ()
    """Folders a DVR export's absolute ``path`` may be under (``:``-separated); relative
    paths go under ``{data_dir}/exports``."""
    dvr_buckets: tuple[str, ...] = ()
    """Buckets an ``s3://bucket/prefix`` ``dvr.root`` may name besides the media bucket."""
    dvr_object_seconds: int = 600
    """Seconds of recording per stored DVR object (docs/dvr.md: S3 request economics)."""
    log_level: str = "INFO"
    """INFO: one line per meaningful event; DEBUG adds the broker's and libraries' chatter."""
    cors_origins: tuple[str, ...] = ("*",)
    """Origins a browser may call the API from (``*``: any; the API uses no cookies)."""
    media_shared: bool = True
    """``shared`` of a new file when neither the upload nor the device's
    ``metadata.media_shared`` says: true = its link needs no token."""
    public_mqtt_ws: str = ""
    """MQTT over WebSocket as clients reach it, without scheme (``host:port/mqtt``), for
    ``/auth/regions``; default: the IoT endpoint on AWS, else the public URL's host + /mqtt."""
    region_name: str = "fleetcam"
    media_bucket: str = ""
    tables: dict[str, str] = field(default_factory=dict)
    """AWS table names keyed by PynamoDB model name (see AWS_TABLE_ENVS)."""
    ingest_queue_url: str = ""
    ingest_dlq_url: str = ""
    dvr_export_queue_url: str = ""
    iot_endpoint: str = ""
    aws_endpoint_url: str = ""
    """Only for tests and local emulators (moto's server): one endpoint for every service."""
    aws_region: str = "us-east-1"

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

        data_dir, data_dir_source = find_data_dir(env)
        return cls(
            data_dir=data_dir,
            data_dir_source=data_dir_source,
            http_host=get(ENV_HTTP_HOST),
            http_port=int(get(ENV_HTTP_PORT)),
            admin_token=get(ENV_ADMIN_TOKEN),
            admin_token_secret=get(ENV_ADMIN_TOKEN_SECRET),
            realtime_wait_max=float(get(ENV_REALTIME_WAIT_MAX)),
            mqtt_url=get(ENV_MQTT_URL),
            mqtt_port=int(get(ENV_MQTT_PORT)),
            mqtt_max_sessions=int(get(ENV_MQTT_MAX_SESSIONS)),
            topic_prefix=get(ENV_TOPIC_PREFIX).strip("/"),
            public_url=get(ENV_PUBLIC_URL),
            sweep_interval=float(get(ENV_SWEEP_INTERVAL)),
            ingest_max_attempts=int(get(ENV_INGEST_MAX_ATTEMPTS)),
            default_media_ttl=int(get(ENV_DEFAULT_MEDIA_TTL)),
            messages_ttl=_retention(get(ENV_MESSAGES_TTL), ENV_MESSAGES_TTL),
            log_ttl=_retention(get(ENV_LOG_TTL), ENV_LOG_TTL),
            jt808_port=int(get(ENV_JT808_PORT)),
            jt1078_port=int(get(ENV_JT1078_PORT)),
            gateway_host=get(ENV_GATEWAY_HOST),
            media_host=get(ENV_MEDIA_HOST),
            auto_register=get(ENV_AUTO_REGISTER).lower() in ("1", "true", "yes", "on"),
            idle_timeout=float(get(ENV_IDLE_TIMEOUT)),
            media_port=int(get(ENV_MEDIA_PORT)),
            gateway_lease=float(get(ENV_GATEWAY_LEASE)),
            attachment_port=int(get(ENV_ATTACHMENT_PORT)),
            teltonika_port=int(get(ENV_TELTONIKA_PORT)),
            teltonika_camera_port=int(get(ENV_TELTONIKA_CAMERA_PORT)),
            attachment_public_port=int(get(ENV_ATTACHMENT_PUBLIC_PORT)),
            attachment_max_file=int(get(ENV_ATTACHMENT_MAX_FILE)),
            attachment_memory=int(get(ENV_ATTACHMENT_MEMORY)),
            attachment_timeout=float(get(ENV_ATTACHMENT_TIMEOUT)),
            media_same_address=get(ENV_MEDIA_SAME_ADDRESS).lower() in ("1", "true", "yes", "on"),
            media_enrich=get(ENV_MEDIA_ENRICH).lower() in ("1", "true", "yes", "on"),
            emf_metrics=get(ENV_EMF_METRICS).lower() in ("1", "true", "yes", "on"),
            share_link_expiry=_expiry(get(ENV_SHARE_LINK_EXPIRY)),
            preauth_timeout=float(get(ENV_PREAUTH_TIMEOUT)),
            auto_register_limit=int(get(ENV_AUTO_REGISTER_LIMIT)),
            auth_failure_limit=int(get(ENV_AUTH_FAILURE_LIMIT)),
            max_connections=int(get(ENV_MAX_CONNECTIONS)),
            max_connections_per_address=int(get(ENV_MAX_CONNECTIONS_PER_ADDRESS)),
            reassembly_memory=int(get(ENV_REASSEMBLY_MEMORY)),
            max_json_body=int(get(ENV_MAX_JSON_BODY)),
            dvr_roots=tuple(p for p in get(ENV_DVR_ROOTS).split(":") if p),
            dvr_export_roots=tuple(p for p in get(ENV_DVR_EXPORT_ROOTS).split(":") if p),
            dvr_buckets=tuple(b for b in get(ENV_DVR_BUCKETS).split(",") if b),
            dvr_object_seconds=int(get(ENV_DVR_OBJECT_SECONDS)),
            log_level=get(ENV_LOG_LEVEL).upper(),
            cors_origins=tuple(o.strip() for o in get(ENV_CORS_ORIGINS).split(",") if o.strip()),
            media_shared=get(ENV_MEDIA_SHARED).lower() in ("1", "true", "yes", "on"),
            public_mqtt_ws=get(ENV_PUBLIC_MQTT_WS),
            region_name=get(ENV_REGION_NAME),
            media_bucket=get(ENV_MEDIA_BUCKET),
            tables={model: env[name] for model, name in AWS_TABLE_ENVS.items() if env.get(name)},
            ingest_queue_url=get(ENV_INGEST_QUEUE_URL),
            ingest_dlq_url=get(ENV_INGEST_DLQ_URL),
            dvr_export_queue_url=get(ENV_DVR_EXPORT_QUEUE_URL),
            iot_endpoint=get(ENV_IOT_ENDPOINT),
            aws_endpoint_url=get(ENV_AWS_ENDPOINT_URL),
            aws_region=env.get(ENV_AWS_REGION) or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )
