"""A page on another origin, in Chromium, calls the API with flespi's headers (CORS): reads
devices, makes a scoped token, revokes it, opens a private file through a share link; with
the origin not allowed, the browser is refused."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Route, async_playwright

from tests.e2e_local import (TOKEN, create_device, http, make_settings, run, serving,
                             upload)
from tests.mediagen import make_image
from tests.pipeline.test_browser import ARGS, CHROMIUM

PAGE_ORIGIN = "http://mediabox.example"
SCRIPT = """async ({api, token, deviceId, fileUuid}) => {
  const h = {'Authorization': 'FlespiToken ' + token, 'x-flespi-app': 'cors-test-0.1'};
  const out = {};
  let r = await fetch(api + '/auth/regions');
  out.regions = await r.json();
  r = await fetch(api + '/gw/devices/all?fields=id,name,connected,device_type_id', {headers: h});
  out.devices = [r.status, await r.json()];
  r = await fetch(api + '/platform/customer/tokens', {method: 'POST',
    headers: {...h, 'Content-Type': 'application/json'},
    body: JSON.stringify([{info: 'from a page', ttl: 60, access: {type: 2, acl: [
      {uri: 'gw/devices', ids: [deviceId], methods: ['GET']}]}}])});
  const tok = (await r.json()).result[0];
  r = await fetch(api + '/gw/devices/all', {headers: {'Authorization': 'Bearer ' + tok.key}});
  out.scoped = [r.status, (await r.json()).result.map(d => d.id)];
  r = await fetch(api + '/gw/devices/' + deviceId, {method: 'PUT',
    headers: {'Authorization': 'Bearer ' + tok.key, 'Content-Type': 'application/json'},
    body: JSON.stringify({name: 'x'})});
  out.forbidden = [r.status, (await r.json()).errors[0].reason];
  r = await fetch(api + '/platform/customer/tokens/' + tok.id, {method: 'DELETE', headers: h});
  out.revoke = r.status;
  r = await fetch(api + '/gw/devices/all', {headers: {'Authorization': 'Bearer ' + tok.key}});
  out.revoked = r.status;
  r = await fetch(api + '/gw/devices/' + deviceId + '/media/share', {method: 'POST',
    headers: {...h, 'Content-Type': 'application/json'},
    body: JSON.stringify({uuid: fileUuid, expire: Math.floor(Date.now() / 1000) + 60})});
  const link = (await r.json()).result[0].url;
  r = await fetch(link, {headers: {'Range': 'bytes=0-1'}});
  const bytes = new Uint8Array(await r.arrayBuffer());
  out.shared = [r.status, Array.from(bytes), r.headers.get('content-range')];
  r = await fetch(api + '/media/' + fileUuid);
  out.private = r.status;
  return out;
}"""


async def _in_chromium(origin_page: str, evaluate: str, arg: dict[str, Any]) -> Any:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page()

            async def serve_page(route: Route) -> None:
                await route.fulfill(status=200, content_type="text/html",
                                    body="<!doctype html><title>other origin</title>")

            await page.route(f"{origin_page}/**", serve_page)
            await page.goto(f"{origin_page}/index.html")
            return await page.evaluate(evaluate, arg)
        finally:
            await browser.close()


def test_a_page_on_another_origin_uses_the_api(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-deps`"
    settings = make_settings(tmp_path / "data")

    async def scenario() -> dict[str, Any]:
        async with serving(settings), http(settings) as api:
            d = await create_device(api)
            f = await upload(api, d["id"], make_image(64, 48), {"shared": False})
            return await _in_chromium(PAGE_ORIGIN, SCRIPT, {
                "api": settings.base_url, "token": TOKEN, "deviceId": d["id"],
                "fileUuid": f["uuid"]})

    out = run(scenario())
    assert out["regions"]["result"][0]["rest"] == settings.base_url
    status, body = out["devices"]
    assert status == 200 and body["result"][0]["device_type_id"] == 1
    assert out["scoped"] == [200, [1]]
    assert out["forbidden"][0] == 403 and "may not" in out["forbidden"][1]
    assert out["revoke"] == 200 and out["revoked"] == 401
    assert out["shared"][0] == 206 and out["shared"][1] == [0xFF, 0xD8]
    assert out["shared"][2].startswith("bytes 0-1/")  # exposed to the page
    assert out["private"] == 401


def test_an_origin_not_allowed_is_refused_by_the_browser(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", cors_origins=("http://allowed.example",))
    probe = """async ({api, token}) => {
      try {
        await fetch(api + '/gw/devices/all', {headers: {'Authorization': 'FlespiToken ' + token}});
        return 'read';
      } catch (e) { return 'refused: ' + e.name; }
    }"""

    async def scenario() -> tuple[Any, Any]:
        async with serving(settings):
            arg = {"api": settings.base_url, "token": TOKEN}
            return (await _in_chromium("http://evil.example", probe, arg),
                    await _in_chromium("http://allowed.example", probe, arg))

    evil, allowed = run(scenario())
    assert evil == "refused: TypeError" and allowed == "read"
