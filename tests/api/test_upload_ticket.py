"""POST /gw/devices/{id}/media-upload locally: no pre-signed links here, so the answer is the
API's own streaming upload, which the same client flow (fields, then the file) uses."""
from __future__ import annotations

import json

from fastapi.testclient import TestClient

from mediagen import make_image


def test_locally_the_ticket_is_the_apis_own_upload(client: TestClient) -> None:
    d = client.post("/gw/devices", json={"ident": "013900000001"}).json()["result"][0]
    body = {"name": "a.jpg", "mime": "image/jpeg", "size": 1000,
            "data": {"meta": {"channel": 3}}}
    r = client.post(f"/gw/devices/{d['id']}/media-upload", json=body)
    assert r.status_code == 200, r.text
    (ticket,) = r.json()["result"]
    assert ticket["url"].endswith(f"/gw/devices/{d['id']}/media") and ticket["uuid"] is None
    path = ticket["url"].split("fleetcam.test", 1)[1]
    up = client.post(path, data=ticket["fields"],
                     files={"file": ("a.jpg", make_image(64, 48), "image/jpeg")})
    assert up.status_code == 200, up.text
    (f,) = up.json()["result"]
    assert f["channel_id"] == 3 and json.loads(ticket["fields"]["data"])["name"] == "a.jpg"
    anonymous = TestClient(client.app)
    assert anonymous.post(f"/gw/devices/{d['id']}/media-upload", json=body).status_code == 401
