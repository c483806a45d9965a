"""The ``fleetcam`` command line."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys

from fleetcam.config import DATA_DB_NAME, ENV_DATA_DIR, Settings
from fleetcam.logs import configure_logging


DESCRIPTION = "fleetcam: video-telematics backend (JT/T 808/1078 gateway, media, flespi-style API)."
EPILOG = f"""\
data folder (files and the SQLite database of the local server):
  1. {ENV_DATA_DIR}, when set;
  2. else ./data, when it holds a {DATA_DB_NAME} (installs from before the per-user default);
  3. else $XDG_DATA_HOME/fleetcam, or ~/.local/share/fleetcam.
Every command prints the folder it used on stderr. Only 'serve' and 'gateway' create one;
'token', 'sweep' and 'dlq' stop with an error when the folder they find holds no database."""


class NoDataFolder(Exception):
    """A command that reads the data folder found none."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetcam", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the all-in-one local server")
    serve.add_argument("--simulate", type=int, default=0, metavar="N",
                       help="also run N simulated MDVRs against the built-in gateway")
    sub.add_parser("gateway", help="run the JT/T 808/1078 gateway alone (the ECS entry point)")
    sim = sub.add_parser("simulate", help="run simulated MDVRs against a gateway")
    sim.add_argument("--devices", type=int, default=2)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=6808)
    sim.add_argument("--edition", choices=["2013", "2019", "mixed"], default="2013")
    sim.add_argument("--interval", type=float, default=10.0, help="seconds between locations")
    sim.add_argument("--h265", action="store_true", help="stream H.265 instead of H.264")
    sim.add_argument("--audio", action="store_true",
                     help="interleave G.711 A-law audio (a 440 Hz tone) with the video")
    sim.add_argument("--channels", type=int, default=2)
    sim.add_argument("--alarm-interval", type=float, default=0.0, metavar="S",
                     help="seconds between ADAS/DSM alarms with a photo and a clip (0: none)")
    sub.add_parser("token", help="print FLEETCAM_ADMIN_TOKEN, else issue a new master token "
                   "in the local server's data folder (only tokens' hashes are kept)")
    watch = sub.add_parser("watch", help="print MQTT messages of a topic filter (the token is "
                           "the MQTT username)")
    watch.add_argument("topic", help="an MQTT topic filter, e.g. 'fleetcam/log/gw/devices/1/#'")
    watch.add_argument("--token", default=os.environ.get("FLEETCAM_TOKEN", ""),
                       help="a fleetcam token (default: $FLEETCAM_TOKEN)")
    watch.add_argument("--host", default="127.0.0.1")
    watch.add_argument("--port", type=int, default=None,
                       help="the broker's port (default: FLEETCAM_MQTT_PORT, else 1883)")
    watch.add_argument("--until", metavar="SUFFIX", default="",
                       help="stop after a message whose topic ends with SUFFIX")
    watch.add_argument("--count", type=int, default=0, help="stop after N messages")
    watch.add_argument("--timeout", type=float, default=0.0,
                       help="give up (exit 1) after this many seconds")
    photo = sub.add_parser("sample-photo", help="write a small JPEG test picture (for uploads)")
    photo.add_argument("path", help="the file to write, e.g. photo.jpg")
    sub.add_parser("sweep", help="enforce TTL and rotation once, now")
    dlq = sub.add_parser("dlq", help="ingest events that failed every retry")
    dlq.add_argument("action", choices=["list", "replay"])
    return parser


async def _gateway(settings: Settings) -> None:
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.dev import until_signal

    if settings.media_bucket:  # the AWS runtime (ECS)
        from fleetcam.runtime.aws import build_aws

        container = build_aws(settings)
        bus = None
    else:
        from fleetcam.adapters.local.mqtt import MqttEventBus
        from fleetcam.runtime.local import build_local, local_mqtt

        bus = MqttEventBus(local_mqtt(settings)[0], client_id="fleetcam-gateway")
        container = build_local(settings, bus=bus)
        await bus.start()
    gw = Gateway(container)
    await gw.start()
    await until_signal()
    await gw.stop()
    if bus is not None:
        await bus.stop()


async def _simulate(args: argparse.Namespace) -> None:
    from fleetcam.runtime.dev import until_signal
    from fleetcam.simulator.device import DeviceConfig
    from fleetcam.simulator.run import Simulation

    sim = Simulation(args.devices, DeviceConfig(
        phone="", host=args.host, port=args.port, version2019=args.edition == "2019",
        report_interval=args.interval, codec="hevc" if args.h265 else "h264",
        channels=args.channels, alarm_interval=args.alarm_interval, audio=args.audio),
        mixed_editions=args.edition == "mixed")
    print("simulated terminals: " + ", ".join(sim.idents), flush=True)
    await sim.start()
    await until_signal()
    await sim.stop_all()


def _say_data_folder(settings: Settings) -> None:
    how = f" ({settings.data_dir_source})" if settings.data_dir_source else ""
    print(f"fleetcam: data folder {settings.data_dir}{how}", file=sys.stderr, flush=True)


def _existing_data_folder(settings: Settings) -> None:
    """Refuse to go on (and so to create anything) where no server ever kept its data."""
    _say_data_folder(settings)
    if not (settings.data_dir / DATA_DB_NAME).is_file():
        raise NoDataFolder(
            f"fleetcam: no fleetcam data in {settings.data_dir} (no {DATA_DB_NAME}); start the "
            f"server first ('fleetcam serve'), or set {ENV_DATA_DIR} to the folder it uses")


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    """Print ``topic payload`` lines; 0 once --until or --count is met, 1 on --timeout."""
    import aiomqtt

    port = args.port or settings.mqtt_port
    seen = 0

    async def receive() -> None:
        nonlocal seen
        async with aiomqtt.Client(args.host, port, username=args.token or None,
                                  password=None) as client:
            await client.subscribe(args.topic, qos=1)
            print(f"fleetcam: watching {args.topic} on {args.host}:{port}", file=sys.stderr,
                  flush=True)
            async for msg in client.messages:
                body = msg.payload
                raw = body if isinstance(body, (bytes, bytearray)) else str(body).encode()
                print(msg.topic.value, raw.decode("utf-8", "replace"), flush=True)
                seen += 1
                if (args.until and msg.topic.value.endswith(args.until)) or (
                        args.count and seen >= args.count):
                    return

    try:
        await asyncio.wait_for(receive(), args.timeout or None)
    except TimeoutError:
        print(f"fleetcam: nothing more within {args.timeout:g} s", file=sys.stderr)
        return 1
    except aiomqtt.MqttError as e:
        print(f"fleetcam: MQTT: {e}", file=sys.stderr)
        return 1
    return 0


def _sample_photo(path: str) -> int:
    import time

    from fleetcam.media.testpattern import snapshot_jpeg

    with open(path, "wb") as f:
        f.write(snapshot_jpeg(640, 360, time.time()))
    print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "sample-photo":
        return _sample_photo(args.path)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    if args.cmd == "watch":
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_watch(args, settings))
        return 0
    try:
        return _run(args, settings)
    except NoDataFolder as e:
        print(e, file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.cmd in ("serve", "gateway") and not settings.media_bucket:
        _say_data_folder(settings)
    if args.cmd == "serve":
        from fleetcam.runtime.dev import serve

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(settings, simulate=args.simulate))
        return 0
    if args.cmd == "gateway":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_gateway(settings))
        return 0
    if args.cmd == "simulate":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_simulate(args))
        return 0
    if settings.ingest_dlq_url and args.cmd == "dlq":
        from dataclasses import asdict

        from fleetcam.adapters.aws.sqs import DeadLetters
        from fleetcam.runtime.aws import client

        dead = DeadLetters(client(settings, "sqs"), settings.ingest_dlq_url,
                           settings.ingest_queue_url)
        if args.action == "list":
            for item in dead.peek():
                print(json.dumps(asdict(item)))
        else:
            print(f"moved {dead.replay()} messages back to the ingest queue")
        return 0
    from fleetcam.runtime.local import build_local
    from fleetcam.runtime.worker import drain

    _existing_data_folder(settings)
    c = build_local(settings)
    if args.cmd == "token":  # only the admin token's hash is kept: issue a new master token
        print(c.extras.get("admin_token") or c.access.mint("master", info="fleetcam token"))
    elif args.cmd == "sweep":
        print(f"expired {c.retention.sweep()} files, {c.commands.expire()} commands")
    elif args.action == "list":
        for item in c.extras["queue"].dead_letters():
            print(json.dumps({"id": item.id, "key": item.event.key, "attempts": item.attempts,
                              "error": item.last_error}))
    else:
        n = c.extras["queue"].replay()
        print(f"replaying {n} events: {drain(c.extras['queue'], c.ingest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
