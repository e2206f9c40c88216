"""The "Sign in with SSO" button in a real browser (Debian's Chromium driven by
Playwright): the web app and the test OpenID Connect provider run on 127.0.0.1 in a
background event loop; the browser follows the redirects to the provider and back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from rollcall.store import storage, users
from tests.browser import chromium
from tests.oidc_provider import OidcProvider, OidcState
from tests.test_web_auth import PASSWORD, make_app
from tests.test_web_oidc import sso_config


class Loop:
    """An event loop in a thread, for servers the synchronous browser test talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def servers(tmp_path, base_env):
    db = storage.open_db(tmp_path)
    storage.add_course(db, "CS101", "Computer science")
    users.add_user(db, "teach@school.edu", "instructor", PASSWORD, ["CS101"])
    db.conn.close()
    loop = Loop()
    idp = OidcProvider(OidcState(email="teach@school.edu"))
    loop.run(idp.__aenter__())

    async def make() -> TestServer:  # the app's own loop is the thread's
        config = sso_config(tmp_path, idp.issuer, base_env)
        server = TestServer(make_app(config), host="127.0.0.1")
        await server.start_server()
        return server

    app = loop.run(make())
    try:
        yield {"base": str(app.make_url("")).rstrip("/"), "idp": idp}
    finally:
        loop.run(app.close())
        loop.run(idp.__aexit__(None, None, None))
        loop.close()


def test_sign_in_with_the_sso_button(servers):
    from playwright.sync_api import sync_playwright

    base = servers["base"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium(), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_context(base_url=base).new_page()
            page.set_default_timeout(30_000)
            page.goto("/courses")
            page.wait_for_url(lambda url: "/login" in url)
            page.get_by_role("link", name="Sign in with SSO").click()
            page.wait_for_url(base + "/courses")
            assert page.get_by_role("link", name="teach@school.edu").is_visible()
            assert "CS101" in page.content()
            cookies = page.context.cookies()
            assert any(c["name"] == "rollcall_session" and c["httpOnly"] for c in cookies)
        finally:
            browser.close()
    assert servers["idp"].state.token_requests == 1
