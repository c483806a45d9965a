"""/docs and /redoc work with no internet: Chromium with every request off the server blocked
lists the operations, and Swagger UI's Authorize plus "Try it out" reach the API.

Needs Debian's chromium (``make browser-deps``); missing, the test fails rather than skips."""
from __future__ import annotations

from pathlib import Path

from playwright.async_api import Route, async_playwright

from tests.e2e_local import TOKEN, make_settings, run, serving

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_docs_render_offline_and_authorize_works(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-deps`"
    settings = make_settings(tmp_path / "data")
    base = settings.base_url
    blocked: list[str] = []

    async def only_the_server(route: Route) -> None:
        if route.request.url.startswith(base + "/"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async def scenario() -> None:
        async with serving(settings), async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page()
                await page.route("**/*", only_the_server)

                await page.goto(f"{base}/docs")
                await page.wait_for_selector(".opblock", timeout=20_000)
                paths = await page.locator(".opblock-summary-path").all_inner_texts()
                flat = [p.replace("\u200b", "").strip() for p in paths]
                assert "/gw/devices/{sel}/media" in flat and "/gw/devices" in flat, flat
                assert len(flat) >= 25

                await page.click("button.authorize")
                dialog = page.locator(".modal-ux")
                await dialog.locator("input").first.fill(f"FlespiToken {TOKEN}")
                await dialog.locator("button.authorize").first.click()
                await dialog.locator("button.close-modal").click()

                op = page.locator(".opblock-get").filter(
                    has=page.locator(".opblock-summary-path",
                                     has_text="/gw/devices/{sel}")).filter(
                    has_not=page.locator(".opblock-summary-path", has_text="{sel}/"))
                await op.first.locator(".opblock-summary").click()
                await op.first.locator("input[placeholder='sel']").fill("all")
                await op.first.locator("button.execute").click()
                status = op.first.locator(".live-responses-table tbody .response-col_status")
                await status.first.wait_for(timeout=10_000)
                assert (await status.first.inner_text()).strip() == "200"

                await page.goto(f"{base}/redoc")
                await page.locator("h2", has_text="Queue Commands").first.wait_for(
                    timeout=20_000)
                html = await page.content()
                assert "/gw/devices/{sel}/commands-queue" in html
            finally:
                await browser.close()

    run(scenario(), timeout=90)
    assert blocked == []
