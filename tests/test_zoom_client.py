"""rollcall.bot.oauth, rollcall.bot.zoom_client (real zoomus) and rollcall.bot.download (real aiohttp) against the fake Zoom."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from rollcall.bot.download import DownloadError, download_recording, host_allowed
from rollcall.bot.oauth import OAuthError, TokenProvider
from rollcall.bot.zoom_client import (
    SPEAKER_WARNING,
    RecordingFile,
    ZoomApiError,
    ZoomClient,
    ZoomRecording,
    encode_uuid,
    month_windows,
    pick_video_file,
)
from tests.fakezoom import (
    FakeAccount,
    FakeFile,
    FakeMeeting,
    FakeRecordingFile,
    FakeUser,
    FakeZoomServer,
    FakeZoomState,
)

ACCOUNT = FakeAccount("acct-1", "client-1", "s3cret")
HOST = FakeUser("u-host", "teacher@example.edu")


@pytest.fixture
def state() -> FakeZoomState:
    return FakeZoomState(accounts=[ACCOUNT], users=[HOST])


@pytest.fixture
def zoom(state):
    with FakeZoomServer(state) as server:
        yield server


def make_tokens(zoom: FakeZoomServer, secret: str = ACCOUNT.client_secret) -> TokenProvider:
    return TokenProvider(
        account_id=ACCOUNT.account_id,
        client_id=ACCOUNT.client_id,
        client_secret=secret,
        oauth_url=zoom.oauth_url,
        timeout=5,
    )


def make_client(zoom: FakeZoomServer, sleeps: list[float] | None = None, **kw) -> ZoomClient:
    sleeps = [] if sleeps is None else sleeps
    return ZoomClient(
        make_tokens(zoom), api_base_url=zoom.api_base_url, timeout=5, sleep=sleeps.append, **kw
    )


def meeting(uuid: str, day: datetime, files: list[FakeRecordingFile] | None = None, **kw):
    return FakeMeeting(
        uuid=uuid,
        id=81234567890,
        host_id=HOST.id,
        start_time=day,
        files=files or [FakeRecordingFile(f"f-{uuid}")],
        **kw,
    )


# -- OAuth ------------------------------------------------------------------


def test_token_is_cached_and_renewed_after_expiry(zoom, state):
    state.token_lifetime = 1
    tokens = make_tokens(zoom)
    first = tokens.token()
    assert tokens.token() == first
    assert state.requests["oauth"] == 1
    assert "s3cret" not in repr(tokens) and first not in repr(tokens.access_token())
    time.sleep(0.6)  # past half the 1 s lifetime: renewed before it expires
    second = tokens.token()
    assert second != first
    assert state.requests["oauth"] == 2


def test_expired_or_revoked_token_is_renewed_once_on_401(zoom, state):
    client = make_client(zoom)
    state.users.append(FakeUser("u-2", "b@example.edu"))
    assert len(client.list_users()) == 2
    state.revoke_tokens()
    assert len(client.list_users()) == 2
    assert state.requests["oauth"] == 2
    # a 401 that persists after renewal is an error, not a loop
    state.fail_next_rest(2, status=401)
    with pytest.raises(ZoomApiError, match="even after renewal") as info:
        client.list_users()
    assert info.value.status == 401
    assert state.requests["oauth"] == 3


def test_wrong_credentials_raise_oauth_error(zoom, state):
    with pytest.raises(OAuthError, match="Zoom rejected the client id/secret") as info:
        make_tokens(zoom, secret="wrong").token()
    assert "wrong" not in str(info.value)
    bad_account = TokenProvider(
        account_id="nope",
        client_id=ACCOUNT.client_id,
        client_secret=ACCOUNT.client_secret,
        oauth_url=zoom.oauth_url,
    )
    with pytest.raises(OAuthError, match="account id"):
        bad_account.token()
    with pytest.raises(OAuthError, match="not configured"):
        TokenProvider(account_id="", client_id="", client_secret="").token()


def test_check_scopes(zoom, state):
    report = make_client(zoom).check_scopes()
    assert report.ok and not report.missing
    state.accounts[0] = FakeAccount(
        ACCOUNT.account_id,
        ACCOUNT.client_id,
        ACCOUNT.client_secret,
        scopes=["cloud_recording:read:list_user_recordings:admin"],
    )
    report = make_client(zoom).check_scopes()
    assert not report.ok
    missing = {c.capability for c in report.missing}
    assert "meeting participants report" in missing
    assert "list cloud recordings" not in missing


# -- REST -------------------------------------------------------------------


def test_recordings_pagination_over_three_pages(zoom, state):
    state.recordings_page_size = 2
    base = datetime(2024, 3, 1, 9, tzinfo=UTC)
    state.meetings = [meeting(f"uuid-{i}==", base + timedelta(days=i)) for i in range(6)]
    recs = make_client(zoom).list_recordings(HOST.id, date(2024, 3, 1), date(2024, 3, 10))
    assert sorted(r.uuid for r in recs) == sorted(m.uuid for m in state.meetings)
    assert state.requests["recordings"] == 3
    r = recs[0]
    assert isinstance(r, ZoomRecording) and r.meeting_id == 81234567890
    assert r.recording_files[0].download_url.startswith(zoom.base_url + "/rec/download/")
    assert r.recording_files[0].recording_start is not None


def test_recordings_range_split_into_month_windows(zoom, state):
    state.meetings = [
        meeting("a==", datetime(2024, 1, 5, tzinfo=UTC)),
        meeting("b==", datetime(2024, 2, 14, tzinfo=UTC)),
        meeting("c==", datetime(2024, 3, 9, tzinfo=UTC)),
    ]
    start = date(2024, 1, 1)
    recs = make_client(zoom).list_recordings(HOST.id, start, start + timedelta(days=69))
    assert {r.uuid for r in recs} == {"a==", "b==", "c=="}
    windows = [(c.query["from"], c.query["to"]) for c in state.calls_to("recordings")]
    assert windows == [
        ("2024-01-01", "2024-01-31"),
        ("2024-02-01", "2024-02-29"),
        ("2024-03-01", "2024-03-10"),
    ]
    assert state.violations == []
    assert month_windows(date(2024, 1, 31), date(2024, 3, 1))[0] == (
        date(2024, 1, 31),
        date(2024, 2, 28),
    )


def test_429_storm_honours_retry_after(zoom, state):
    sleeps: list[float] = []
    client = make_client(zoom, sleeps)
    state.fail_next_rest(3, status=429, retry_after=2)
    assert len(client.list_users()) == 1
    assert sleeps == [2.0, 2.0, 2.0]
    assert state.requests["users"] == 4


def test_5xx_retried_with_exponential_backoff(zoom, state):
    sleeps: list[float] = []
    client = make_client(zoom, sleeps, backoff=0.5)
    state.fail_next_rest(2, status=503, retry_after=None)
    assert client.list_users()[0].email == HOST.email
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_max_attempts(zoom, state):
    sleeps: list[float] = []
    client = make_client(zoom, sleeps, max_attempts=3)
    state.fail_next_rest(5, status=500, retry_after=None)
    with pytest.raises(ZoomApiError, match=r"gave up after 3 attempts \(last: HTTP 500\)"):
        client.list_users()
    assert state.requests["users"] == 3
    assert len(sleeps) == 2


def test_client_errors_are_not_retried(zoom, state):
    with pytest.raises(ZoomApiError, match="This recording does not exist") as info:
        make_client(zoom).get_meeting_recordings("missing==")
    assert info.value.status == 404 and info.value.code == 3301
    assert state.requests["meeting_recordings"] == 1


def test_uuid_double_encoding(zoom, state):
    weird = "/abc//def=="
    plain = "aB+c/d=="
    state.meetings = [
        meeting(weird, datetime(2024, 3, 1, tzinfo=UTC)),
        meeting(plain, datetime(2024, 3, 2, tzinfo=UTC)),
    ]
    assert encode_uuid(weird) == "%252Fabc%252F%252Fdef%253D%253D"
    assert encode_uuid(plain) == "aB%2Bc%2Fd%3D%3D"
    client = make_client(zoom)
    rec = client.get_meeting_recordings(weird)
    assert rec.uuid == weird
    assert rec.download_access_token == state.meetings[0].download_access_token
    assert client.get_meeting_recordings(plain).uuid == plain
    assert [c.match["meeting_id"] for c in state.calls_to("meeting_recordings")] == [weird, plain]


def test_participants_report_pagination(zoom, state):
    state.participants_page_size = 4
    people = [
        {
            "id": f"zid{i}",
            "user_id": f"1600{i}",
            "name": f"Student {i}",
            "user_email": f"s{i}@example.edu",
            "join_time": "2024-03-01T10:00:00Z",
            "leave_time": "2024-03-01T10:50:00Z",
            "duration": 3000,
        }
        for i in range(10)
    ]
    state.meetings = [meeting("/x//y==", datetime(2024, 3, 1, tzinfo=UTC), participants=people)]
    got = make_client(zoom).participants_report("/x//y==")
    assert [p.email for p in got] == [p["user_email"] for p in people]
    assert got[0].user_id == "16000" and got[0].duration == 3000
    assert got[0].leave_time - got[0].join_time == timedelta(minutes=50)
    calls = state.calls_to("participants")
    assert len(calls) == 3
    assert all(c.query["page_size"] == "300" and c.match["meeting_id"] == "/x//y==" for c in calls)


def _file(
    kind: str, status: str = "completed", ftype: str = "MP4", start: int = 0
) -> RecordingFile:
    return RecordingFile(
        id=f"{kind}-{start}",
        meeting_id="u",
        recording_type=kind,
        file_type=ftype,
        file_extension=ftype,
        file_size=10,
        download_url="https://zoom.us/rec/download/x",
        status=status,
        recording_start=datetime(2024, 1, 1, 10, start, tzinfo=UTC),
        recording_end=None,
    )


def _rec(*files: RecordingFile) -> ZoomRecording:
    return ZoomRecording("u", 1, "t", "h", "", None, 60, list(files))


def test_pick_video_file_preferences():
    audio = _file("audio_only", ftype="M4A")
    speaker = _file("active_speaker")
    gallery = _file("gallery_view")
    shared_gallery = _file("shared_screen_with_gallery_view")
    assert pick_video_file(_rec(speaker, shared_gallery, gallery, audio)) == (gallery, None)
    assert pick_video_file(_rec(speaker, shared_gallery)) == (shared_gallery, None)
    chosen, warning = pick_video_file(_rec(audio, speaker))
    assert chosen == speaker and warning == SPEAKER_WARNING
    processing = _file("gallery_view", status="processing")
    assert pick_video_file(_rec(processing, speaker))[0] == speaker
    chosen, warning = pick_video_file(_rec(audio))
    assert chosen is None and "no completed MP4" in warning
    late, early = _file("gallery_view", start=30), _file("gallery_view", start=1)
    chosen, warning = pick_video_file(_rec(late, early))
    assert chosen == early and "2 gallery_view segments" in warning


# -- downloads --------------------------------------------------------------


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "source.mp4"
    path.write_bytes(os.urandom(300_000))
    return path


def fetch(zoom, file_id, dest, *, token=None, expected=None, hosts=None, sleeps=None, **kw):
    sleeps = [] if sleeps is None else sleeps

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    async def run():
        return await download_recording(
            kw.pop("url", zoom.download_url(file_id)),
            dest,
            token=token or make_tokens(zoom).token(),
            expected_size=expected,
            allowed_hosts=["127.0.0.1"] if hosts is None else hosts,
            max_attempts=kw.pop("max_attempts", 4),
            backoff=0.5,
            sleep=fake_sleep,
            chunk_size=16_384,
            **kw,
        )

    return asyncio.run(run())


def test_download_normal(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video)
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "out" / "rec.mp4"
    got = fetch(
        zoom, "f1", dest, expected=video.stat().st_size, progress=lambda d, t: seen.append((d, t))
    )
    assert got == dest and dest.read_bytes() == video.read_bytes()
    assert not dest.with_name("rec.mp4.part").exists()
    assert seen[-1] == (300_000, 300_000)


def test_download_with_webhook_download_token(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video)
    state.meetings = [meeting("m==", datetime(2024, 3, 1, tzinfo=UTC), [FakeRecordingFile("f1")])]
    token = state.meetings[0].download_access_token
    fetch(zoom, "f1", tmp_path / "a.mp4", token=token)
    assert (tmp_path / "a.mp4").read_bytes() == video.read_bytes()
    with pytest.raises(DownloadError, match="HTTP 401"):
        fetch(zoom, "f1", tmp_path / "b.mp4", token="not-a-token")


def test_download_html_with_200_refused(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video, behaviour="html_error_with_200")
    with pytest.raises(DownloadError, match="text/html instead of a video"):
        fetch(zoom, "f1", tmp_path / "rec.mp4")
    assert not list(tmp_path.glob("rec.mp4*"))
    assert state.requests["download"] == 1


def test_download_wrong_size_refused(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video)
    with pytest.raises(DownloadError, match="Zoom listed 12345"):
        fetch(zoom, "f1", tmp_path / "rec.mp4", expected=12345)
    assert not list(tmp_path.glob("rec.mp4*"))


def test_download_host_allow_list(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video)
    with pytest.raises(DownloadError, match="not in \\[zoom\\] download_hosts"):
        fetch(zoom, "f1", tmp_path / "rec.mp4", url=zoom.download_url("f1", alt=True))
    assert state.requests["download"] == 0
    # allowed first host, redirect to a host outside the list
    state.files["f2"] = FakeFile(video, behaviour="redirect", redirect_base=zoom.alt_base_url)
    with pytest.raises(DownloadError, match="'localhost' is not in"):
        fetch(zoom, "f2", tmp_path / "rec.mp4")
    assert state.requests["signed"] == 0
    # the same redirect is followed when the target host is allowed; no token sent to it
    fetch(zoom, "f2", tmp_path / "rec.mp4", hosts=["127.0.0.1", "local*"])
    assert (tmp_path / "rec.mp4").read_bytes() == video.read_bytes()
    assert "Authorization" not in state.calls_to("signed")[-1].headers
    assert host_allowed("https://us02web.zoom.us/rec/x", ["zoom.us", "*.zoom.us"])
    assert not host_allowed("https://zoom.us.evil.com/rec/x", ["zoom.us", "*.zoom.us"])
    assert not host_allowed("ftp://zoom.us/rec/x", ["zoom.us"])


def test_download_fails_twice_then_succeeds(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video, behaviour="fail_n_times_then_ok", fail_times=2)
    sleeps: list[float] = []
    fetch(zoom, "f1", tmp_path / "rec.mp4", sleeps=sleeps)
    assert (tmp_path / "rec.mp4").read_bytes() == video.read_bytes()
    assert sleeps == [0.5, 1.0]
    state.files["f2"] = FakeFile(
        video, behaviour="fail_n_times_then_ok", fail_times=1, fail_status=429, retry_after=7
    )
    sleeps.clear()
    fetch(zoom, "f2", tmp_path / "rec2.mp4", sleeps=sleeps)
    assert sleeps == [7.0]
    state.files["f3"] = FakeFile(video, behaviour="fail_n_times_then_ok", fail_times=9)
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        fetch(zoom, "f3", tmp_path / "rec3.mp4", max_attempts=3)


def test_download_resumes_with_range_after_truncation(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video, behaviour="truncated_body", truncate_at=100_000)
    fetch(zoom, "f1", tmp_path / "rec.mp4", expected=300_000)
    assert (tmp_path / "rec.mp4").read_bytes() == video.read_bytes()
    ranges = [c.headers.get("Range") for c in state.calls_to("download")]
    assert ranges[0] is None and ranges[1] == "bytes=100000-"
    # a server that ignores Range: the second response (200) replaces the partial file
    state.files["f2"] = FakeFile(
        video, behaviour="truncated_body", truncate_at=50_000, support_range=False
    )
    fetch(zoom, "f2", tmp_path / "rec2.mp4", expected=300_000)
    assert (tmp_path / "rec2.mp4").read_bytes() == video.read_bytes()


def test_download_slow_body_completes(zoom, state, video, tmp_path):
    state.files["f1"] = FakeFile(video, behaviour="slow_body", slow_chunk=30_000, slow_delay=0.05)
    fetch(zoom, "f1", tmp_path / "rec.mp4", expected=300_000)
    assert (tmp_path / "rec.mp4").read_bytes() == video.read_bytes()


def test_concurrent_calls_share_one_renewal(zoom, state):
    from concurrent.futures import ThreadPoolExecutor

    client = make_client(zoom)
    client.list_users()
    state.revoke_tokens()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: client.list_users(), range(8)))
    assert all(len(r) == 1 for r in results)
    assert state.requests["oauth"] == 2
