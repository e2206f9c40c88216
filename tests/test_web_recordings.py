"""The recordings page against the fake Zoom on 127.0.0.1 (``tests/fakezoom``), over real
HTTP: browsing the account's cloud recordings by date range, and the Analyse button,
which queues one job for a recording however often it is pressed."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import pytest

from rollcall.config import load_config
from rollcall.store import jobs, storage
from tests.fakezoom.server import (
    FakeAccount,
    FakeMeeting,
    FakeRecordingFile,
    FakeUser,
    FakeZoomServer,
    FakeZoomState,
)
from tests.test_web_auth import add_users, csrf_of, run, sign_in

IN_RANGE = "/inRange//uuid=="  # a uuid that needs double encoding
OUT_OF_RANGE = "outOfRange=="


@pytest.fixture
def zoom_site(tmp_path, base_env):
    state = FakeZoomState(
        accounts=[FakeAccount("acc-1", "client-1", "client-secret")],
        users=[FakeUser(id="host-1", email="teacher@example.edu")],
    )
    state.meetings += [
        FakeMeeting(
            uuid=IN_RANGE,
            id=111,
            host_id="host-1",
            topic="Biology 101 - week 3",
            start_time=datetime(2024, 3, 5, 10, tzinfo=UTC),
            host_email="teacher@example.edu",
            files=[FakeRecordingFile("file-in")],
        ),
        FakeMeeting(
            uuid=OUT_OF_RANGE,
            id=222,
            host_id="host-1",
            topic="Biology 101 - week 1",
            start_time=datetime(2024, 2, 1, 10, tzinfo=UTC),
            host_email="teacher@example.edu",
            files=[FakeRecordingFile("file-out")],
        ),
    ]
    db = storage.open_db(tmp_path)
    storage.add_course(db, "BIO101", "Biology")
    storage.add_course(db, "CS101", "CS")
    db.conn.close()
    add_users(tmp_path)
    with FakeZoomServer(state) as zoom:
        env = {
            **base_env,
            "ROLLCALL_HOME": str(tmp_path),
            "ROLLCALL_ZOOM_ACCOUNT_ID": "acc-1",
            "ROLLCALL_ZOOM_CLIENT_ID": "client-1",
            "ROLLCALL_ZOOM_CLIENT_SECRET": "client-secret",
            "ROLLCALL_ZOOM_API_BASE_URL": zoom.api_base_url,
            "ROLLCALL_ZOOM_OAUTH_URL": zoom.oauth_url,
            "ROLLCALL_ZOOM_USERS": "host-1",
            "ROLLCALL_ZOOM_DOWNLOAD_HOSTS": "127.0.0.1,localhost",
            "ROLLCALL_ZOOM_COURSE_MAP": json.dumps([{"course": "BIO101", "topics": ["Biology*"]}]),
        }
        yield {"config": load_config(None, env), "home": tmp_path, "state": state}


def listed_uuids(page: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(r'name="uuid" value="([^"]*)"', page)]


def test_browse_zoom_recordings_by_date_and_analyse_one_once(zoom_site):
    home = zoom_site["home"]

    async def scenario(client) -> None:
        assert (await sign_in(client, "admin@school.edu")).status == 303
        page = await (await client.get("/recordings")).text()
        assert "Zoom cloud recordings" in page and listed_uuids(page) == []
        page = await (await client.get("/recordings?from=2024-03-01&to=2024-03-31")).text()
        assert listed_uuids(page) == [IN_RANGE]
        assert "Biology 101 - week 3" in page and "week 1" not in page
        page = await (await client.get("/recordings?from=2024-01-15&to=2024-03-31")).text()
        assert sorted(listed_uuids(page)) == sorted([IN_RANGE, OUT_OF_RANGE])
        page = await (await client.get("/recordings?from=2023-01-01&to=2023-01-31")).text()
        assert listed_uuids(page) == [] and "No recordings in these dates" in page
        page = await (await client.get("/recordings?from=2024-03-31&to=nonsense")).text()
        assert "flash error" in page  # a wrong date is said on the page, not a 500

        csrf = await csrf_of(client, "/recordings")
        first = await client.post(
            "/recordings/zoom", data={"csrf_token": csrf, "uuid": IN_RANGE}, allow_redirects=False
        )
        assert first.status == 303 and first.headers["Location"].startswith("/jobs/")
        again = await client.post(
            "/recordings/zoom", data={"csrf_token": csrf, "uuid": IN_RANGE}, allow_redirects=False
        )
        assert again.status == 303 and again.headers["Location"] == first.headers["Location"]
        job_page = await client.get(first.headers["Location"])
        assert job_page.status == 200 and "BIO101" in await job_page.text()

    run(zoom_site["config"], scenario)
    assert zoom_site["state"].requests["recordings"] >= 4  # each listing asked the fake Zoom
    db = storage.open_db(home)
    queued = jobs.list_jobs(db)
    assert len(queued) == 1
    job = queued[0]
    assert job.meeting_uuid == IN_RANGE and job.course_id == "BIO101" and job.state == jobs.QUEUED
    assert job.file_id == "file-in"
    assert job.payload["source"] == "web" and job.payload["download_token"]


def test_zoom_recordings_are_for_admins(zoom_site):
    async def scenario(client) -> None:
        assert (await sign_in(client, "teach@school.edu")).status == 303
        page = await (await client.get("/recordings?from=2024-03-01&to=2024-03-31")).text()
        assert "Zoom cloud recordings" not in page and listed_uuids(page) == []
        csrf = await csrf_of(client, "/recordings")
        r = await client.post(
            "/recordings/zoom", data={"csrf_token": csrf, "uuid": IN_RANGE}, allow_redirects=False
        )
        assert r.status == 403

    run(zoom_site["config"], scenario)
    assert zoom_site["state"].requests["recordings"] == 0
    db = storage.open_db(zoom_site["home"])
    assert jobs.list_jobs(db) == []
