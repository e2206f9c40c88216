"""Single sign-on with OpenID Connect: the full redirect flow over real HTTP between the
web app and a small provider on 127.0.0.1 (``tests/oidc_provider.py``), and the
id_tokens the app must refuse."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rollcall.config import ConfigError, load_config
from rollcall.store import storage, users
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, OidcState
from tests.test_web_auth import PASSWORD, make_app


def sso_config(home, issuer: str, base_env: dict, **extra: str):
    env = {
        **base_env,
        "ROLLCALL_HOME": str(home),
        "ROLLCALL_OIDC_ISSUER": issuer,
        "ROLLCALL_OIDC_CLIENT_ID": CLIENT_ID,
        "ROLLCALL_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        **extra,
    }
    return load_config(None, env)


@pytest.fixture
def home(tmp_path):
    db = storage.open_db(tmp_path)
    storage.add_course(db, "CS101", "CS")
    users.add_user(db, "teach@school.edu", "instructor", PASSWORD, ["CS101"])
    db.conn.close()
    return tmp_path


async def sso(client: TestClient, next_: str = "/courses"):
    """Follow the flow hop by hop: app -> provider -> app. Returns the callback's answer."""
    r = await client.get(f"/login/sso?next={next_}", allow_redirects=False)
    assert r.status == 302, await r.text()
    authorize = r.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    r = await client.session.get(authorize, allow_redirects=False)
    assert r.status == 302
    callback = r.headers["Location"]
    assert urlsplit(callback).path == "/login/sso/callback"
    return await client.session.get(callback, allow_redirects=False)


def run_flow(home, base_env, state: OidcState, scenario, **extra: str) -> OidcState:
    async def main() -> None:
        async with OidcProvider(state) as idp:
            config = sso_config(home, idp.issuer, base_env, **extra)
            async with TestClient(TestServer(make_app(config))) as client:
                await scenario(client)

    asyncio.run(main())
    return state


def test_sign_in_with_sso_over_the_full_redirect_flow(home, base_env):
    async def scenario(client: TestClient) -> None:
        page = await (await client.get("/login")).text()
        assert "Sign in with SSO" in page and CLIENT_SECRET not in page
        assert (await client.get("/courses", allow_redirects=False)).status == 303
        r = await sso(client)
        assert r.status == 303 and r.headers["Location"] == "/courses"
        r = await client.get("/courses", allow_redirects=False)
        assert r.status == 200 and "CS101" in await r.text()
        me = await (await client.get("/api/v1/me")).json()
        assert me == {"email": "teach@school.edu", "role": "instructor", "courses": ["CS101"]}
        # the callback cannot be replayed: the session's flow is used up
        r = await client.get("/login/sso/callback?code=x&state=y", allow_redirects=False)
        assert r.status == 400

    state = run_flow(home, base_env, OidcState(email="Teach@School.edu"), scenario)
    assert state.token_requests == 1 and not state.refused


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("bad_signature", "signature"),
        ("wrong_nonce", "nonce"),
        ("wrong_audience", "aud"),
        ("unverified_email", "not verified"),
    ],
)
def test_sso_refuses_a_bad_id_token(home, base_env, mode, why):
    async def scenario(client: TestClient) -> None:
        r = await sso(client)
        assert r.status == 401
        assert why in await r.text()
        assert (await client.get("/courses", allow_redirects=False)).status == 303

    run_flow(home, base_env, OidcState(mode=mode), scenario)


def test_sso_state_must_match(home, base_env):
    async def scenario(client: TestClient) -> None:
        r = await client.get("/login/sso", allow_redirects=False)
        r = await client.session.get(r.headers["Location"], allow_redirects=False)
        forged = r.headers["Location"].replace("state=", "state=forged")
        r = await client.session.get(forged, allow_redirects=False)
        assert r.status == 400 and "does not match" in await r.text()
        assert (await client.get("/courses", allow_redirects=False)).status == 303

    state = run_flow(home, base_env, OidcState(), scenario)
    assert state.token_requests == 0  # the code was never traded


def test_sso_needs_an_existing_account_unless_auto_create(home, base_env):
    async def unknown(client: TestClient) -> None:
        r = await sso(client)
        assert r.status == 403 and "no account for new@school.edu" in await r.text()

    run_flow(home, base_env, OidcState(email="new@school.edu"), unknown)
    db = storage.open_db(home)
    assert users.find_user(db, "new@school.edu") is None

    async def other_domain(client: TestClient) -> None:
        r = await sso(client)
        assert r.status == 401 and "not in a domain allowed" in await r.text()

    run_flow(
        home,
        base_env,
        OidcState(email="teach@elsewhere.org"),
        other_domain,
        ROLLCALL_OIDC_ALLOWED_DOMAINS="school.edu",
    )

    async def created(client: TestClient) -> None:
        r = await sso(client, next_="/")
        assert r.status == 303
        me = await (await client.get("/api/v1/me")).json()
        assert me == {"email": "new@school.edu", "role": "instructor", "courses": []}
        assert (await client.get("/plugins", allow_redirects=False)).status == 403

    run_flow(
        home,
        base_env,
        OidcState(email="new@school.edu"),
        created,
        ROLLCALL_OIDC_ALLOWED_DOMAINS="school.edu",
        ROLLCALL_OIDC_AUTO_CREATE="true",
    )
    assert users.find_user(db, "new@school.edu").role == "instructor"


def test_sso_email_claim_is_configurable(home, base_env):
    """Entra may send the address only as preferred_username: a claim that is not
    there refuses the sign-in."""

    async def scenario(client: TestClient) -> None:
        r = await sso(client)
        assert r.status == 401 and "no email in upn" in await r.text()

    run_flow(home, base_env, OidcState(), scenario, ROLLCALL_OIDC_EMAIL_CLAIM="upn")


def test_sso_is_off_without_an_issuer_and_its_config_is_checked(home, base_env):
    config = load_config(None, {**base_env, "ROLLCALL_HOME": str(home)})

    async def main() -> None:
        async with TestClient(TestServer(make_app(config))) as client:
            assert "Sign in with SSO" not in await (await client.get("/login")).text()
            assert (await client.get("/login/sso", allow_redirects=False)).status == 404

    asyncio.run(main())
    with pytest.raises(ConfigError, match="auto_create needs allowed_domains"):
        sso_config(home, "https://idp.example", base_env, ROLLCALL_OIDC_AUTO_CREATE="1")
    with pytest.raises(ConfigError, match="client_id"):
        load_config(None, {**base_env, "ROLLCALL_OIDC_ISSUER": "https://idp.example"})
