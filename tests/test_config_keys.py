"""Every key of config.toml changes behaviour.

For each key that can be checked cheaply, the configuration is loaded twice from a
TOML file (the key at its default, then changed) and the object that uses the key
is asked what it sees: the job's max attempts, the server's limits, the outbox's
backoff, the SMTP connection... The two answers must differ. The other keys are
listed in :data:`NOT_CHEAP` with the reason; every key of config.toml is in one of
the two tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rollcall.config import Config, config_toml_keys, load_config

ROOT = Path(__file__).resolve().parents[1]
ZOOM_CREDENTIALS = {
    "zoom.account_id": "acct",
    "zoom.client_id": "client",
    "zoom.client_secret": "secret",
}


@dataclass
class Ctx:
    """What a probe may use: a scratch folder, pytest's monkeypatch, the TOML file."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    path: Path


@dataclass(frozen=True)
class Probe:
    value: Any  # the changed value
    see: Callable[[Config, Ctx], Any]  # what the key's user sees
    base: dict[str, Any] = field(default_factory=dict)  # other keys, set in both loads


# -------------------------------------------------------------------- the users


def _resolved(config: Config, ctx: Ctx) -> dict[str, Any]:
    """What resolve_face_models hands the model registry (nothing is downloaded)."""
    import rollcall.models as models
    from rollcall.pipeline.plugin_manager import resolve_face_models

    seen: dict[str, Any] = {}

    class Pack:
        name = "p"
        match_threshold = 0.3
        unknown_cluster_threshold = 0.4

    def get_pack(name, **kwargs):
        seen.update(pack=name, **{f"get_{k}": v for k, v in kwargs.items()})
        return Pack()

    def resolve_pack(pack, **kwargs):
        seen.update(kwargs)
        return argparse.Namespace(detector_path=Path("d.onnx"), recognizer_path=Path("r.onnx"))

    ctx.monkeypatch.setattr(models, "get_pack", get_pack)
    ctx.monkeypatch.setattr(models, "resolve_pack", resolve_pack)
    resolve_face_models(config, progress=False)
    return seen


def _face_model_files(config: Config, ctx: Ctx) -> str:
    """ "fp32 files" when resolve_face_models accepts the configuration, else its error,
    which names the int8 copy it expected."""
    from rollcall.models import ModelError

    try:
        _resolved(config, ctx)
    except ModelError as exc:
        return str(exc)
    return "fp32 files"


def _builtin(config: Config, plugin: str, attr: str) -> Any:
    from rollcall.pipeline.plugin_manager import FaceModels, builtin_plugins

    models = FaceModels("p", Path("d.onnx"), Path("r.onnx"), 0.3, 0.4)
    found = next(p for p in builtin_plugins(config, models) if p.name == plugin)
    return getattr(found, attr)


def _analyzer(config: Config, plugin: str, key: str) -> Any:
    from rollcall.pipeline.plugin_manager import analyzer_plugins

    found = next(p for p in analyzer_plugins(config) if p.name == plugin)
    return getattr(found.settings, key)


def _recording(**kwargs: Any):
    from rollcall.bot.zoom_client import RecordingFile, ZoomRecording

    video = RecordingFile(
        id="f1",
        meeting_id="u1",
        recording_type="gallery_view",
        file_type="MP4",
        file_extension="MP4",
        file_size=1000,
        download_url="https://zoom.us/rec/download/1",
        status="completed",
        recording_start=None,
        recording_end=None,
    )
    fields = dict(
        uuid="u1",
        meeting_id=123,
        topic="Intro",
        host_id="h",
        host_email="prof@x.edu",
        start_time=None,
        duration=60,
        recording_files=[video],
    )
    return ZoomRecording(**{**fields, **kwargs})


def _job(config: Config, ctx: Ctx):
    """The job the intake makes of a recording (webhook, WebSocket and polling alike)."""
    from rollcall.bot.intake import enqueue_recording
    from rollcall.store import jobs, storage

    db = storage.open_db(config.home)
    try:
        result = enqueue_recording(db, config, _recording(), download_token=None, source="poll")
        return jobs.get(db, result.job_id)
    finally:
        db.conn.close()


def _poll(config: Config, ctx: Ctx) -> list[tuple[str, date]]:
    """Whose recordings poll_once lists, from which day."""
    from rollcall.bot.poller import poll_once
    from rollcall.store import storage

    asked: list[tuple[str, date]] = []

    class Client:
        def list_recordings(self, user, since, until):
            asked.append((user, since))
            return []

    db = storage.open_db(config.home)
    try:
        poll_once(db, config, Client())
    finally:
        db.conn.close()
    return [(user, (datetime.now(UTC).date() - since).days) for user, since in asked]


def _disabled(config: Config, ctx: Ctx) -> dict[str, str]:
    from rollcall.service.serve import disabled_parts

    return disabled_parts(config)


def _serve_address(config: Config, ctx: Ctx) -> tuple[str, int]:
    import rollcall.service.serve as serve_module
    from rollcall.cli.service import cmd_serve

    seen: list[tuple[str, int]] = []

    async def fake_serve(config, host, port):
        seen.append((host, port))

    ctx.monkeypatch.setattr(serve_module, "serve", fake_serve)
    cmd_serve(argparse.Namespace(host=None, port=None), config, None)
    return seen[0]


def _http_limits(config: Config, ctx: Ctx):
    from rollcall.web.connections import http_limits

    return http_limits(config)


@contextlib.asynccontextmanager
async def _app_server(config: Config):
    from aiohttp import web
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from rollcall.bot.intake import Intake
    from rollcall.service.serve import ServiceState, build_app

    app = build_app(config, Intake(config), ServiceState(), AsyncIOScheduler())
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def _webhook_status_for_2kb(config: Config, ctx: Ctx) -> int:
    """The service's answer to an unsigned 2 KB webhook: 413 when the body is too large."""
    import aiohttp

    async def run() -> int:
        async with _app_server(config) as port, aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/zoom/webhook"
            async with session.post(url, data=b"x" * 2048) as response:
                return response.status

    return asyncio.run(run())


def _answer_to_slow_body(config: Config, ctx: Ctx) -> str:
    """The service's answer when a webhook body stops after one byte (raw socket)."""

    async def run() -> str:
        async with _app_server(config) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /zoom/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
            await writer.drain()
            try:
                line = await asyncio.wait_for(reader.readline(), 1.5)
            except TimeoutError:
                line = b"no answer"
            writer.close()
            return line.decode().strip()

    return asyncio.run(run())


def _admin_status(config: Config, ctx: Ctx) -> int:
    """GET /api/plugins without credentials: 503 when the API is off, else 401."""
    import aiohttp

    async def run() -> int:
        async with (
            _app_server(config) as port,
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/api/plugins") as response,
        ):
            return response.status

    return asyncio.run(run())


def _sso_button(config: Config, ctx: Ctx) -> bool:
    """Whether the sign-in page offers single sign-on ([oidc] issuer)."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from rollcall.web.admin_api import admin_routes
    from rollcall.web.app import setup_web_app

    async def run() -> bool:
        app = web.Application()
        app.add_routes(admin_routes(config))
        setup_web_app(app, config)
        async with TestClient(TestServer(app)) as client:
            return "Sign in with SSO" in await (await client.get("/login")).text()

    return asyncio.run(run())


def _sso_authorize_query(config: Config, ctx: Ctx) -> str:
    """The authorization URL the sign-in sends the browser to (its client_id)."""
    from rollcall.web.oidc import OidcClient, Provider

    provider = Provider("https://idp.example", "https://idp.example/auth", "", "", True)
    return OidcClient(config.oidc).authorization_url(provider, "https://r/cb", "s", "n", "v")


async def _token_request(config: Config) -> str:
    """The Authorization header the code exchange sends to the token endpoint."""
    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from rollcall.web.oidc import OidcClient, Provider

    seen: list[str] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"id_token": "x"})

    app = web.Application()
    app.router.add_post("/token", token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        provider = Provider("https://idp", "", str(server.make_url("/token")), "", True)
        client = OidcClient(config.oidc)
        client._provider = provider  # discovery is another probe's business
        async with aiohttp.ClientSession() as http:
            await client.exchange(http, "code", "https://r/cb", "verifier")
    finally:
        await server.close()
    return seen[0]


def _sso_identity(config: Config, ctx: Ctx) -> str:
    """Who an id_token for x@other.org, with the address only in ``upn``, signs in as."""
    from rollcall.web.oidc import OidcClient, SsoError

    claims = {"sub": "1", "email": "x@other.org", "upn": "y@school.edu"}
    try:
        return OidcClient(config.oidc).identity(claims).email
    except SsoError as exc:
        return str(exc)


def _sso_account(config: Config, ctx: Ctx) -> bool:
    """Whether signing in as an unknown address of an allowed domain makes an account."""
    from rollcall.store import storage
    from rollcall.web.oidc import _account

    db = storage.open_db(config.home)
    try:
        return _account(db, "new@school.edu", config.oidc.auto_create) is not None
    finally:
        db.conn.close()


def _scheduled(config: Config, ctx: Ctx) -> dict[str, Any]:
    """How rollcall serve schedules outbox delivery."""
    from rollcall.service.serve import _schedule_notifications

    jobs: dict[str, Any] = {}

    class Scheduler:
        def add_job(self, func, trigger, **kwargs):
            jobs[kwargs["id"]] = kwargs

    _schedule_notifications(Scheduler(), config)
    return jobs["notify"]["seconds"]


def _outbox_after_failure(config: Config, ctx: Ctx, attempts: int) -> tuple[str, float]:
    from rollcall.store import outbox, storage

    db = storage.open_db(config.home)
    try:
        state = outbox.mark_failed(db, config, {"id": 0, "attempts": attempts}, "down")
    finally:
        db.conn.close()
    return state, outbox.backoff_s(config, attempts)


def _retention_days(config: Config, ctx: Ctx) -> int:
    """The days the service's daily retention clean-up hands the store."""
    from rollcall.service.serve import purge_retention
    from rollcall.store import retention

    seen: list[int] = []
    ctx.monkeypatch.setattr(
        retention, "purge_older_than", lambda db, days, home=None: seen.append(days) or 0
    )
    purge_retention(config)
    return seen[0]


def _logging(config: Config, ctx: Ctx) -> tuple[str, str]:
    """What the CLI sets logging up with."""
    import rollcall.cli.main as cli_main

    seen: list[tuple[str, str]] = []
    ctx.monkeypatch.setattr(cli_main, "setup_logging", lambda *a: seen.append(a))
    for name in ("ROLLCALL_LOGGING_LEVEL", "ROLLCALL_LOGGING_FORMAT", "ROLLCALL_HOME"):
        ctx.monkeypatch.delenv(name, raising=False)
    ctx.monkeypatch.setenv("ROLLCALL_CONFIG", str(ctx.path))
    assert cli_main.main(["jobs", "list"]) == 0
    return seen[0]


def _smtp(config: Config, ctx: Ctx) -> dict[str, Any]:
    """What the email notifier does with the mail server (a fake smtplib)."""
    import smtplib
    from email.message import EmailMessage

    from rollcall.plugins.notifiers.email import EmailNotifier, from_address

    seen: dict[str, Any] = {"from": from_address(config), "calls": []}

    class FakeSMTP:
        def __init__(self, host, port, timeout, **kwargs):
            seen.update(host=host, port=port, timeout=timeout, ssl="context" in kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def ehlo(self):
            seen["calls"].append("ehlo")

        def starttls(self, **kwargs):
            seen["calls"].append("starttls")

        def login(self, user, password):
            seen["calls"].append(f"login {user} {password}")

        def send_message(self, msg, **kwargs):
            return {}

    ctx.monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    ctx.monkeypatch.setattr(smtplib, "SMTP_SSL", FakeSMTP)
    msg = EmailMessage()
    msg["From"], msg["To"] = "a@x.edu", "b@x.edu"
    EmailNotifier(ssl_context=lambda: None).send(config, msg)
    return seen


def _zoom_client(config: Config, ctx: Ctx) -> tuple[str, str]:
    from rollcall.bot.zoom_client import ZoomClient

    client = ZoomClient.from_config(config.zoom)
    return client.api_base_url, client.tokens.oauth_url


def _credentials_missing(config: Config, ctx: Ctx) -> list[str]:
    from rollcall.config import zoom_credentials_missing

    return zoom_credentials_missing(config)


def _notify_entry(config: Config, ctx: Ctx):
    from rollcall.config import course_notify

    return course_notify(config, "CS101")


def _course_threshold_language(config: Config, ctx: Ctx) -> tuple[float, str]:
    from rollcall.config import language_for, threshold_for

    return threshold_for(config, "CS101"), language_for(config, "CS101")


def _admin_link(config: Config, ctx: Ctx) -> str:
    """The link to the meeting's page in its summary message."""
    from rollcall.notify.summary import build_summary
    from rollcall.store import storage
    from tests.reportdata import add_course, add_meeting

    db = storage.open_db(config.home)
    try:
        add_course(db, "CS101", ["S1"])
        meeting_id = add_meeting(db, "CS101", "m1", {"S1": [1, 1]})
        return build_summary(db, config, meeting_id).admin_url
    finally:
        db.conn.close()


# -------------------------------------------------------------------- the tables

PROBES: dict[str, Probe] = {
    "storage.home": Probe("elsewhere", lambda c, x: c.home.name),
    "models.pack": Probe("buffalo_l", lambda c, x: _resolved(c, x)["pack"]),
    "models.dir": Probe("/models", lambda c, x: _resolved(c, x)["models_dir"]),
    "models.cache_dir": Probe("/cache", lambda c, x: _resolved(c, x)["cache_dir"]),
    "models.allow_download": Probe(False, lambda c, x: _resolved(c, x)["allow_download"]),
    "models.download_base_url": Probe(
        "https://mirror.example/v0.7", lambda c, x: _resolved(c, x)["download_base_url"]
    ),
    "models.match_threshold": Probe(0.42, lambda c, x: _resolved(c, x)["get_match_threshold"]),
    "models.threads": Probe(3, lambda c, x: _builtin(c, "detector", "threads")),
    "models.provider": Probe("cuda", lambda c, x: _builtin(c, "recognizer", "provider")),
    "models.precision": Probe("int8", _face_model_files, base={"models.quantized_dir": "/nowhere"}),
    "models.quantized_dir": Probe(
        "/elsewhere", _face_model_files, base={"models.precision": "int8"}
    ),
    "analysis.det_threshold": Probe(0.7, lambda c, x: _builtin(c, "detector", "threshold")),
    "analysis.min_face_px": Probe(24, lambda c, x: _builtin(c, "detector", "min_face_px")),
    "analysis.max_side": Probe(1280, lambda c, x: _builtin(c, "detector", "max_side")),
    "recognition.min_track_samples": Probe(
        5, lambda c, x: _builtin(c, "recognizer", "min_track_samples")
    ),
    "recognition.vote_share": Probe(0.7, lambda c, x: _builtin(c, "recognizer", "vote_share")),
    "recognition.max_gap_s": Probe(5.0, lambda c, x: _builtin(c, "attendance", "max_gap_s")),
    "recognition.unknown_cluster_threshold": Probe(
        0.5, lambda c, x: _resolved(c, x)["get_unknown_cluster_threshold"]
    ),
    **{
        f"attendance.{key}": Probe(value, lambda c, x, k=key: _builtin(c, "attendance", k))
        for key, value in (
            ("min_seconds_per_minute", 20.0),
            ("absent_below_pct", 40.0),
            ("late_after_pct", 30.0),
            ("left_early_pct", 30.0),
        )
    },
    "privacy.retention_days": Probe(30, _retention_days),
    "logging.level": Probe("DEBUG", lambda c, x: _logging(c, x)[0]),
    "logging.format": Probe("json", lambda c, x: _logging(c, x)[1]),
    "zoom.account_id": Probe("acct", _credentials_missing),
    "zoom.client_id": Probe("client", _credentials_missing),
    "zoom.client_secret": Probe("secret", _credentials_missing),
    "zoom.webhook_secret_token": Probe("wh", lambda c, x: "webhook" in _disabled(c, x)),
    "zoom.users": Probe(["a@x.edu", "b@x.edu"], _poll),
    "zoom.poll_minutes": Probe(
        0, lambda c, x: _disabled(c, x).get("polling"), base=ZOOM_CREDENTIALS
    ),
    "zoom.websocket_subscription_id": Probe(
        "sub", lambda c, x: "websocket" in _disabled(c, x), base=ZOOM_CREDENTIALS
    ),
    "zoom.api_base_url": Probe("https://api.example/v2", lambda c, x: _zoom_client(c, x)[0]),
    "zoom.oauth_url": Probe("https://oauth.example/token", lambda c, x: _zoom_client(c, x)[1]),
    "zoom.course_map": Probe(
        [{"course": "CS101", "topics": ["Intro*"]}], lambda c, x: _job(c, x).course_id
    ),
    "jobs.max_attempts": Probe(2, lambda c, x: _job(c, x).max_attempts),
    "jobs.poll_lookback_days": Probe(3, _poll),
    "server.host": Probe("0.0.0.0", lambda c, x: _serve_address(c, x)[0]),
    "server.port": Probe(9090, lambda c, x: _serve_address(c, x)[1]),
    "server.max_body_bytes": Probe(
        1024, _webhook_status_for_2kb, base={"zoom.webhook_secret_token": "wh"}
    ),
    "server.header_timeout_s": Probe(2.0, lambda c, x: _http_limits(c, x).header_timeout_s),
    "server.body_timeout_s": Probe(
        0.3, _answer_to_slow_body, base={"zoom.webhook_secret_token": "wh"}
    ),
    "server.max_connections": Probe(7, lambda c, x: _http_limits(c, x).max_connections),
    "server.admin_token": Probe("tok", _admin_status),
    "oidc.issuer": Probe("https://idp.example", _sso_button, base={"oidc.client_id": "rollcall"}),
    "oidc.client_id": Probe("other-client", _sso_authorize_query),
    "oidc.client_secret": Probe("s3cret", lambda c, x: asyncio.run(_token_request(c))),
    "oidc.allowed_domains": Probe(["school.edu"], _sso_identity),
    "oidc.email_claim": Probe("upn", _sso_identity),
    "oidc.auto_create": Probe(True, _sso_account, base={"oidc.allowed_domains": ["school.edu"]}),
    **{
        f"plugins.emotion.{key}": Probe(value, lambda c, x, k=key: _analyzer(c, "emotion", k))
        for key, value in (("min_face_px", 60), ("min_confidence", 0.6))
    },
    **{
        f"plugins.engagement.{key}": Probe(value, lambda c, x, k=key: _analyzer(c, "engagement", k))
        for key, value in (
            ("weight_visible", 0.5),
            ("weight_facing", 0.3),
            ("weight_stable", 0.1),
            ("max_yaw_deg", 45.0),
            ("max_pitch_deg", 35.0),
            ("stable_motion", 0.5),
            ("engaged_min_score", 70.0),
            ("partly_min_score", 40.0),
            ("head_pose", "keypoints"),
        )
    },
    "reports.threshold_pct": Probe(60.0, lambda c, x: _course_threshold_language(c, x)[0]),
    "reports.language": Probe("es", lambda c, x: _course_threshold_language(c, x)[1]),
    "reports.base_url": Probe("https://rollcall.example", _admin_link),
    **{
        f"smtp.{key}": Probe(value, lambda c, x: _smtp(c, x), base={"smtp.host": "mail.x.edu"})
        for key, value in (
            ("port", 2525),
            ("security", "tls"),
            ("username", "me@x.edu"),
            ("password", "pw"),
            ("from_address", "rollcall@x.edu"),
            ("timeout_s", 5.0),
        )
    },
    "smtp.host": Probe("mail2.x.edu", lambda c, x: _smtp(c, x)["host"]),
    "notify.max_attempts": Probe(20, lambda c, x: _outbox_after_failure(c, x, 8)[0]),
    "notify.retry_base_s": Probe(5.0, lambda c, x: _outbox_after_failure(c, x, 1)[1]),
    "notify.retry_max_s": Probe(100.0, lambda c, x: _outbox_after_failure(c, x, 7)[1]),
    "notify.send_interval_s": Probe(60.0, _scheduled),
    "notify.courses": Probe([{"course": "CS101", "emails": ["p@x.edu"]}], _notify_entry),
}
# smtp.username and smtp.password are only used with a login: the base gives a username.
PROBES["smtp.password"] = Probe(
    "pw", lambda c, x: _smtp(c, x)["calls"], base={"smtp.host": "m", "smtp.username": "u"}
)


def _cluster(config: Config, ctx: Ctx) -> Any:
    """What the broker connection of rollcall serve and rollcall worker is made with
    (no connection is opened)."""
    from rollcall.cluster.broker import broker_address, make_broker

    if not config.cluster.enabled:
        return None
    return broker_address(config), make_broker(config).heartbeat_timeout


CLUSTER_BASE = {"cluster.secret": "cluster-secret-0123456789"}
PROBES["cluster.broker_url"] = Probe("redis://127.0.0.1:6400/1", _cluster, base=CLUSTER_BASE)
PROBES["cluster.worker_heartbeat_s"] = Probe(
    5.0, _cluster, base={**CLUSTER_BASE, "cluster.broker_url": "redis://127.0.0.1:6400/1"}
)

NOT_CHEAP: dict[str, str] = {
    "cluster.secret": "signs every cluster message; tests/test_cluster.py checks that another "
    "secret is refused",
    "cluster.task_timeout_s": "how long rollcall serve waits for a worker's result; needs a "
    "broker and a worker (tests/test_cluster.py)",
    "cluster.max_in_flight": "the number of jobs rollcall serve sends to the cluster at once; "
    "needs a broker (tests/test_cluster.py, benchmarks/cluster.py)",
    "storage.keep_videos": "read by the service worker after a recording was downloaded "
    "and analysed",
    "analysis.interval_s": "read inside an analysis run (frame sampling); needs a recording",
    "analysis.workers": "the number of analysis processes rollcall serve starts",
    "analysis.recheck_s": "read inside an analysis run (tile gate); needs a recording",
    "analysis.embed_max_age_s": "read inside an analysis run (tile gate); needs a recording",
    "recognition.track_iou": "read inside an analysis run (face tracker); needs a recording",
    "privacy.store_frames": "read inside an analysis run (evidence keeper); needs a recording",
    "privacy.store_face_crops": "read inside an analysis run (evidence keeper); needs a recording",
    **{
        f"enrollment.{key}": "read by the photo checks of enroll_photos, which need the "
        "face models and photos"
        for key in (
            "min_face_px",
            "min_sharpness",
            "min_det_score",
            "duplicate_similarity",
            "recommended_photos",
            "max_photo_bytes",
            "max_photo_pixels",
        )
    },
    "enrollment.masked_copies": "enrollment embeds masked copies of each photo; needs the face "
    "models (tests/test_enrollment_cli.py compares with and without)",
    **{
        f"recognition.{key}": "the recognizer's track decision rule, read inside an analysis "
        "run (tests/test_review.py and tests/test_lookalikes.py exercise it)"
        for key in ("margin_student", "margin_cohort", "centroid_above", "review", "review_slack")
    },
    **{
        f"recognition.{key}": "the tile-label check after the track decisions, read inside an "
        "analysis run (tests/test_counter_evidence.py analyses with labels off and on)"
        for key in ("read_tile_labels", "tile_label_doubt")
    },
    "zoom.websocket_url": "used only when rollcall serve opens the WebSocket subscription",
    "zoom.download_hosts": "passed by the service worker to the recording download",
    "jobs.retry_base_s": "read by the service worker when a job fails (retry backoff)",
    "jobs.retry_max_s": "read by the service worker when a job fails (retry backoff)",
    "jobs.lease_s": "read by the service worker when it claims a job and heart-beats",
    "server.shutdown_grace_s": "how long rollcall serve waits for running jobs on SIGTERM",
    "zoom.participants_retry_s": "the interval of rollcall serve's participants-report retries "
    "(tests/test_service.py runs them with a short one)",
    "zoom.participants_give_up_h": "when rollcall serve stops asking for a participants report "
    "(tests/test_service.py gives up with 0)",
    "server.tls_terminated": "sets the Secure flag of the web app's session cookie "
    "(tests/test_web_auth.py signs in over plain HTTP with it off)",
    "server.max_upload_bytes": "the size limit of a recording uploaded in the web app "
    "(tests/test_web_browser.py uploads one)",
    "jobs.poll_revivals": "how often the Zoom poller may requeue a failed job with fresh download "
    "data (tests/test_service.py)",
}


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return json.dumps(value)  # strings, numbers and booleans are written alike


def _write(path: Path, values: dict[str, Any]) -> Path:
    tables: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        tables.setdefault(section, {})[name] = value
    lines = []
    for section, items in tables.items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {_toml_value(value)}" for name, value in items.items()]
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # the helper writes valid TOML
    return path


def _all_keys() -> list[str]:
    return [f"{section}.{key}" for section, keys in config_toml_keys().items() for key in keys]


def test_every_key_is_probed_or_listed_with_a_reason():
    with open(ROOT / "config.toml", "rb") as fh:
        documented = tomllib.load(fh)
    in_toml = set()
    for section, table in documented.items():
        if section == "plugins":
            in_toml |= {f"plugins.{p}.{k}" for p, t in table.items() for k in t}
        else:
            in_toml |= {f"{section}.{k}" for k in table}
    assert in_toml == set(_all_keys())
    assert not set(PROBES) & set(NOT_CHEAP)
    assert sorted(set(PROBES) | set(NOT_CHEAP)) == sorted(in_toml)
    assert all(reason.strip() for reason in NOT_CHEAP.values())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("key", sorted(PROBES))
def test_changing_the_key_changes_what_its_user_sees(key, tmp_path, monkeypatch):
    probe = PROBES[key]
    seen = []
    for name in ("default", "changed"):
        values = {"storage.home": str(tmp_path / name / "home"), **probe.base}
        if name == "changed":
            values[key] = probe.value
        if key == "storage.home":
            values[key] = str(tmp_path / name / str(values[key] or "home"))
        path = _write(tmp_path / f"{name}.toml", values)
        config = load_config(path, {})
        Path(config.storage.home).mkdir(parents=True, exist_ok=True)
        with monkeypatch.context() as patch:
            seen.append(probe.see(config, Ctx(tmp_path / name, patch, path)))
    assert seen[0] != seen[1], f"{key}: changing it to {probe.value!r} changed nothing"


def test_job_gets_the_configured_max_attempts(tmp_path, monkeypatch):
    """[jobs] max_attempts reaches the queue (it used to be the queue's default of 5)."""
    path = _write(tmp_path / "c.toml", {"storage.home": str(tmp_path), "jobs.max_attempts": 9})
    assert _job(load_config(path, {}), Ctx(tmp_path, monkeypatch, path)).max_attempts == 9


# ------------------------------------------------------- keys and variables the docs name

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Variables that are not ROLLCALL_<SECTION>_<KEY>: where the configuration is, the data
#: folder, the test and benchmark data, and docs/plugins.md's example plugin's key.
OTHER_VARIABLES = {
    "ROLLCALL_CONFIG",
    "ROLLCALL_HOME",
    "ROLLCALL_FACES_DIR",
    "ROLLCALL_LFW_DIR",
    "ROLLCALL_PLUGINS_FACE_COUNTER_CROWD_MIN",
}
#: Sections of earlier versions that still work, with a deprecation warning.
DEPRECATED_SECTIONS = {"emotion", "engagement"}


def _doc_text(path: Path) -> str:
    """The prose and inline code of a document, code blocks left out (their fences
    would pair the wrong backticks)."""
    return " ".join(re.sub(r"```.*?```", "", path.read_text(), flags=re.S).split())


def test_every_config_key_the_docs_name_exists():
    """`[section] key` in the README and docs/*.md is a key of config.toml."""
    keys = config_toml_keys()
    named = []
    for doc in DOCS:
        for span in re.findall(r"`([^`]+)`", _doc_text(doc)):
            for section, key in re.findall(r"^\[([a-z_.]+)\](?: ([a-z_]+))?", span.strip()):
                named.append((doc.name, section, key))
                if section in DEPRECATED_SECTIONS:
                    continue
                assert section in keys, (doc.name, span)
                assert not key or key in keys[section], (doc.name, span)
    assert len(named) > 50


def test_every_environment_variable_the_docs_name_exists():
    """ROLLCALL_... in the README, docs/*.md and config.toml is a key's variable (or one
    of :data:`OTHER_VARIABLES`); a prefix such as ROLLCALL_ZOOM_* names a section's."""
    variables = {
        f"ROLLCALL_{section}_{key}".replace(".", "_").upper()
        for section, keys in config_toml_keys().items()
        for key in keys
    }
    old = {f"ROLLCALL_{s.upper()}_" for s in DEPRECATED_SECTIONS}
    for doc in [*DOCS, ROOT / "config.toml"]:
        for name in set(re.findall(r"ROLLCALL_[A-Z0-9_]+", doc.read_text())):
            if name.endswith("_"):
                assert name in old or any(v.startswith(name) for v in variables), (doc, name)
            else:
                assert name in variables | OTHER_VARIABLES, (doc.name, name)
