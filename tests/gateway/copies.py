"""Several gateway copies on one shared store, as behind a load balancer: a copy in its own
process (``python -m tests.gateway.copies``, killed with SIGKILL or stopped with SIGTERM), and
a TCP load balancer that sends each connection to the first copy that accepts it (or to a
chosen one)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


async def _main() -> None:
    """A gateway copy alone (the ECS container's shape) over the local shared store; prints
    its ports, runs until SIGTERM (then stops as ``fleetcam gateway`` does)."""
    from fleetcam.config import Settings
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.dev import until_signal
    from fleetcam.runtime.local import build_local

    container = build_local(Settings.from_env())
    gw = Gateway(container)
    await gw.start()
    print(f"ready {gw.port_808} {gw.port_1078} {gw.gateway_id}", flush=True)
    await until_signal()
    await gw.stop()
    print("stopped", flush=True)


class CopyProcess:
    """A gateway copy in a child process."""

    def __init__(self, data_dir: Path, token: str, **env: Any) -> None:
        self.env = {**os.environ, "FLEETCAM_DATA_DIR": str(data_dir),
                    "FLEETCAM_ADMIN_TOKEN": token, "FLEETCAM_GATEWAY_HOST": "127.0.0.1",
                    "FLEETCAM_JT808_PORT": "0", "FLEETCAM_JT1078_PORT": "0",
                    "FLEETCAM_ATTACHMENT_PORT": "0", "FLEETCAM_TELTONIKA_PORT": "0",
                    "FLEETCAM_TELTONIKA_CAMERA_PORT": "0",
                    "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
                    **{f"FLEETCAM_{k.upper()}": str(v) for k, v in env.items()}}
        self.proc: asyncio.subprocess.Process | None = None
        self.log = open(data_dir.parent / f"copy-{id(self)}.log", "wb")  # noqa: SIM115
        self.port_808 = self.port_1078 = 0
        self.gateway_id = ""

    async def start(self) -> CopyProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.gateway.copies", cwd=str(ROOT), env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode().split()
        if not line or line[0] != "ready":
            self.log.flush()
            raise AssertionError(f"gateway copy failed to start: "
                                 f"{Path(self.log.name).read_text()[-3000:]}")
        self.port_808, self.port_1078, self.gateway_id = int(line[1]), int(line[2]), line[3]
        return self

    async def kill(self) -> None:
        """SIGKILL: no clean-up at all (a crash, an OOM kill)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> None:
        """SIGTERM, as ECS stops a task on a deploy or a scale-in."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), 30)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.log.close()


class Balancer:
    """Forwards each accepted connection to ``pick()``'s first backend port that accepts it."""

    def __init__(self, pick: Callable[[], list[int]]) -> None:
        self.pick = pick
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.routed: list[int] = []
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> Balancer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for port in self.pick():
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.routed.append(port)
            loop = asyncio.get_running_loop()
            for a, b in ((reader, up_w), (up_r, writer)):
                t = loop.create_task(self._pipe(a, b))
                self._pipes.add(t)
                t.add_done_callback(self._pipes.discard)
            return
        writer.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self._pipes):
            t.cancel()


@asynccontextmanager
async def balancer(pick: Callable[[], list[int]]) -> AsyncIterator[Balancer]:
    b = await Balancer(pick).start()
    try:
        yield b
    finally:
        await b.close()


if __name__ == "__main__":
    asyncio.run(_main())
