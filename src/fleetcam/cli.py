"""The ``fleetcam`` command line."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from fleetcam.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetcam", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="run the all-in-one local server")
    sub.add_parser("token", help="print the admin token")
    sub.add_parser("sweep", help="enforce TTL and rotation once, now")
    dlq = sub.add_parser("dlq", help="ingest events that failed every retry")
    dlq.add_argument("action", choices=["list", "replay"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    if args.cmd == "serve":
        from fleetcam.runtime.dev import serve

        try:
            asyncio.run(serve(settings))
        except KeyboardInterrupt:
            pass
        return 0
    from fleetcam.runtime.local import build_local
    from fleetcam.runtime.worker import drain

    c = build_local(settings)
    if args.cmd == "token":
        print(c.extras["admin_token"])
    elif args.cmd == "sweep":
        print(f"expired {c.retention.sweep()} files")
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
