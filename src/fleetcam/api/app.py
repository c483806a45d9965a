"""create_app(container): the only constructor of the FastAPI application."""
from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from fleetcam import __version__
from fleetcam.api import errors
from fleetcam.api.access import AccessLog
from fleetcam.api.deps import require_token
from fleetcam.api.openapi import install_docs
from fleetcam.api.routers import (console, devices, dvr_config, dvrplay, files, gateway, logs,
                                  media, protocols, regions, rules, share, tokens)
from fleetcam.runtime.container import Container


def create_app(container: Container) -> FastAPI:
    app = FastAPI(title="fleetcam", version=__version__, docs_url=None, redoc_url=None,
                  description="Video-telematics backend with flespi's gateway REST layout. "
                              "Requests under /gw need `Authorization: FlespiToken <token>`.")
    app.state.container = container
    errors.install(app)
    # CORS: every path a browser uses; no cookies, so any origin by default
    app.add_middleware(CORSMiddleware, allow_origins=list(container.settings.cors_origins),
                       allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
                       allow_headers=["Authorization", "x-flespi-app", "Content-Type", "Range",
                                      "Session", "X-Originator"],  # Flussonic's DVR player
                       expose_headers=["Content-Range", "Accept-Ranges", "Content-Length",
                                       "ETag", "Location", "Content-Disposition", "X-Dvr-Gaps",
                                       "X-Thumbnail-Utc"],
                       allow_credentials=False, max_age=3600)
    app.add_middleware(AccessLog)
    guarded = [Depends(require_token)]
    app.include_router(devices.router, dependencies=guarded)
    app.include_router(share.router, dependencies=guarded)
    app.include_router(media.router, dependencies=guarded)
    app.include_router(logs.router, dependencies=guarded)
    app.include_router(gateway.router, dependencies=guarded)
    app.include_router(rules.router, dependencies=guarded)
    app.include_router(tokens.router, dependencies=guarded)
    app.include_router(protocols.router, dependencies=guarded)
    app.include_router(files.router)
    app.include_router(regions.router)
    app.include_router(console.router)  # before dvrplay's /{name}/{file}
    install_docs(app)
    app.include_router(dvr_config.router)  # checks DVR write access itself (Flussonic auth)
    app.include_router(dvrplay.admin_router)
    app.include_router(dvrplay.router)  # last: /{name}/{file} must not shadow other routes

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness probe (no token)."""
        return {"status": "ok"}

    return app
