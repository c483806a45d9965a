"""create_app(container): the only constructor of the FastAPI application."""
from __future__ import annotations

from fastapi import Depends, FastAPI

from fleetcam import __version__
from fleetcam.api import errors
from fleetcam.api.access import AccessLog
from fleetcam.api.deps import require_token
from fleetcam.api.routers import (devices, dvr_config, files, gateway, logs, media, rules,
                                  tokens)
from fleetcam.runtime.container import Container


def create_app(container: Container) -> FastAPI:
    app = FastAPI(title="fleetcam", version=__version__,
                  description="Video-telematics backend with flespi's gateway REST layout. "
                              "Requests under /gw need `Authorization: FlespiToken <token>`.")
    app.state.container = container
    errors.install(app)
    app.add_middleware(AccessLog)
    guarded = [Depends(require_token)]
    app.include_router(devices.router, dependencies=guarded)
    app.include_router(media.router, dependencies=guarded)
    app.include_router(logs.router, dependencies=guarded)
    app.include_router(gateway.router, dependencies=guarded)
    app.include_router(rules.router, dependencies=guarded)
    app.include_router(tokens.router, dependencies=guarded)
    app.include_router(files.router)
    app.include_router(dvr_config.router)  # checks DVR write access itself (Flussonic auth)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness probe (no token)."""
        return {"status": "ok"}

    return app
