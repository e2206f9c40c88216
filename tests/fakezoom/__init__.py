"""A fake Zoom for tests: OAuth, REST v2 and recording downloads on 127.0.0.1."""

from tests.fakezoom.server import (
    Call,
    FakeAccount,
    FakeFile,
    FakeMeeting,
    FakeRecordingFile,
    FakeUser,
    FakeZoomServer,
    FakeZoomState,
    IssuedToken,
    build_app,
    decode_meeting_id,
)

__all__ = [
    "Call",
    "FakeAccount",
    "FakeFile",
    "FakeMeeting",
    "FakeRecordingFile",
    "FakeUser",
    "FakeZoomServer",
    "FakeZoomState",
    "IssuedToken",
    "build_app",
    "decode_meeting_id",
]
