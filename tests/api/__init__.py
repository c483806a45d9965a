"""REST API tests through FastAPI's TestClient, plus the helpers they share."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from tests.mediagen import make_image


def upload(client: TestClient, sel: int | str, content: bytes | None = None, *,
           data: dict[str, Any] | None = None, filename: str = "photo.jpg",
           content_type: str = "image/jpeg") -> Response:
    """POST a multipart upload (``file`` plus the JSON ``data`` part) to a device's media."""
    body = make_image(64, 48) if content is None else content
    form = {"data": json.dumps(data)} if data is not None else None
    return client.post(f"/gw/devices/{sel}/media", data=form,
                       files={"file": (filename, body, content_type)})


def uploaded(client: TestClient, sel: int | str, content: bytes | None = None,
             **kw: Any) -> dict[str, Any]:
    """Upload and return the file's JSON, asserting success."""
    r = upload(client, sel, content, **kw)
    assert r.status_code == 200, r.text
    (item,) = r.json()["result"]
    return item  # type: ignore[no-any-return]


def list_media(client: TestClient, sel: int | str, **data: Any) -> Response:
    """GET the media listing with ``data`` as the JSON query option."""
    params = {"data": json.dumps(data)} if data else None
    return client.get(f"/gw/devices/{sel}/media", params=params)


def error(r: Response, status: int) -> dict[str, Any]:
    """Assert flespi's error envelope with this status; return its first error."""
    assert r.status_code == status, r.text
    errors = r.json()["errors"]
    assert errors and isinstance(errors[0]["reason"], str) and errors[0]["reason"]
    return errors[0]  # type: ignore[no-any-return]


def stored_objects(data_dir: Path) -> list[Path]:
    """Media content files on disk (the local object store's ``media/`` tree)."""
    root = Path(data_dir) / "objects" / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
