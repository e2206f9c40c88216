"""Tests of the synthetic Zoom meeting generator (rollcall/synthetic/meeting.py)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from rollcall.presence import present_minutes
from rollcall.synthetic.meeting import (
    CAMERA_OFF_BGR,
    MAX_TILES,
    GroundTruth,
    MeetingRenderer,
    MeetingScript,
    Participant,
    Presence,
    WebcamProfile,
    augment_photo,
    bitrate_kbit_s,
    faces_from_group_photo,
    gallery_grid,
    gallery_layout,
    ground_truth,
    load_faces_dir,
    participants_from_faces,
    random_script,
    random_webcam,
    render_frame,
    render_meeting,
    truth_path_for,
    zoom_like,
)

FACES_DIR = Path(
    os.environ.get(
        "ROLLCALL_FACES_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "faces"
    )
)


@pytest.fixture(scope="module")
def faces() -> dict[str, list[np.ndarray]]:
    if not FACES_DIR.is_dir():
        pytest.skip(f"shared face photos not found at {FACES_DIR} (set ROLLCALL_FACES_DIR)")
    return load_faces_dir(FACES_DIR)


def _dummy_people(n: int) -> list[Participant]:
    img = np.full((32, 32, 3), 128, np.uint8)
    return [Participant(f"p{i}", f"Person {i}", (img,)) for i in range(n)]


# A hand-written 70 s meeting: minute 0 is 60 s long, minute 1 is 10 s long.
SCHEDULE = {
    "alice": Presence(connected=((0.0, 70.0),)),
    "bob": Presence(connected=((40.0, 70.0),)),  # joins late
    "carol": Presence(connected=((0.0, 25.0), (45.0, 70.0))),  # drops and rejoins
    "dave": Presence(connected=((0.0, 70.0),), camera_off=((10.0, 50.0),)),  # camera off
}
EXPECTED_VISIBLE = {
    "alice": [60.0, 10.0],
    "bob": [20.0, 10.0],
    "carol": [40.0, 10.0],  # 0-25 and 45-60, then 60-70
    "dave": [20.0, 10.0],  # 0-10 and 50-60, then 60-70
}
EXPECTED_CONNECTED = {
    "alice": [60.0, 10.0],
    "bob": [20.0, 10.0],
    "carol": [40.0, 10.0],
    "dave": [60.0, 10.0],
}


@pytest.fixture(scope="module")
def tiny_script(faces) -> MeetingScript:
    names = sorted(faces)[:4]
    people = tuple(
        Participant(
            key=key,
            display_name=key.capitalize(),
            images=tuple(faces[name][:2]),
            webcam=WebcamProfile(noise_sigma=2.0),
        )
        for key, name in zip(SCHEDULE, names, strict=True)
    )
    return MeetingScript(
        duration_s=70.0,
        participants=people,
        presence=SCHEDULE,
        fps=2,
        width=640,
        height=360,
        seed=7,
        speaker_highlight=False,
        title="tiny",
    )


@pytest.fixture(scope="module")
def rendered(tiny_script, tmp_path_factory) -> tuple[Path, GroundTruth, list[float]]:
    out = tmp_path_factory.mktemp("synthetic") / "tiny.mp4"
    seen: list[float] = []
    truth = render_meeting(tiny_script, out, progress=seen.append)
    return out, truth, seen


def _decode(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="bgr24")) for f in c.decode(video=0)]


def test_video_decodes_with_expected_length_and_size(rendered, tiny_script):
    path, _, seen = rendered
    frames = _decode(path)
    assert abs(len(frames) - 140) <= 1
    assert frames[0][1].shape == (360, 640, 3)
    assert frames[-1][0] == pytest.approx(69.5, abs=0.51)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.duration * stream.time_base) == pytest.approx(70.0, abs=0.51)
    assert not path.with_name(path.name + ".part").exists()
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_ground_truth_matches_schedule(rendered):
    _, truth, _ = rendered
    assert truth.keys == list(SCHEDULE)
    for key in SCHEDULE:
        p = truth.participant(key)
        assert p.visible_seconds_per_minute == pytest.approx(EXPECTED_VISIBLE[key]), key
        assert p.connected_seconds_per_minute == pytest.approx(EXPECTED_CONNECTED[key]), key
    assert truth.participant("carol").connected == [(0.0, 25.0), (45.0, 70.0)]
    assert truth.participant("dave").visible == [(0.0, 10.0), (50.0, 70.0)]
    # The presence rule: 30 s of a full minute; the 10 s tail needs 5 s.
    assert truth.presence_matrix(30) == {
        "alice": [1, 1],
        "bob": [0, 1],
        "carol": [1, 1],
        "dave": [0, 1],
    }
    assert truth.present_minutes("carol", 45) == present_minutes([40.0, 10.0], 70.0, 45)


def test_ground_truth_json_round_trip(rendered, tmp_path):
    path, truth, _ = rendered
    written = truth_path_for(path)
    assert written.name == "tiny.mp4.truth.json"
    assert GroundTruth.load(written) == truth
    truth.save(tmp_path / "t.json")
    assert GroundTruth.load(tmp_path / "t.json") == truth
    assert truth.video == "tiny.mp4" and truth.n_frames == 140 and truth.fps == 2


def test_layout_reflows_in_join_order(tiny_script):
    r = MeetingRenderer(tiny_script)
    assert [p.key for p in r.placements(5)] == ["alice", "carol", "dave"]
    at30 = r.placements(30)
    assert [(p.key, p.camera_on) for p in at30] == [("alice", True), ("dave", False)]
    assert [p.key for p in r.placements(50)] == ["alice", "dave", "bob", "carol"]
    assert at30[0].rect.w == at30[1].rect.w and at30[0].rect.x < at30[1].rect.x


def _tile(img: np.ndarray, rect) -> np.ndarray:
    return img[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w]


def test_camera_off_tile_has_no_face_but_a_name(rendered, tiny_script):
    path, _, _ = rendered
    frames = _decode(path)
    placements = {p.key: p for p in MeetingRenderer(tiny_script).placements(30)}
    img = frames[60][1]  # t = 30 s
    off = _tile(img, placements["dave"].rect).astype(np.float32)
    on = _tile(img, placements["alice"].rect).astype(np.float32)
    h, w = off.shape[:2]
    band = (slice(int(0.08 * h), int(0.3 * h)), slice(int(0.05 * w), int(0.95 * w)))
    assert off[band].std() < 4.0  # flat grey, no face
    assert abs(off[band].mean() - CAMERA_OFF_BGR[0]) < 8
    assert on[band].std() > 10.0  # a webcam picture
    gray = off.mean(axis=2)
    centre = gray[int(0.35 * h) : int(0.65 * h), int(0.1 * w) : int(0.9 * w)]
    label = gray[int(0.8 * h) :, : int(0.5 * w)]
    assert (centre > 180).sum() > 30  # the name in the middle
    assert (label > 180).sum() > 20  # the name label bottom-left
    # The camera-on tile carries a name label too: a dark box with white text.
    label_on = on.mean(axis=2)[int(0.8 * h) :, : int(0.3 * w)]
    assert (label_on > 180).sum() > 20
    # Before the camera went off, dave's tile showed a picture.
    before = {p.key: p for p in MeetingRenderer(tiny_script).placements(5)}["dave"]
    assert _tile(frames[10][1], before.rect).astype(np.float32)[band].std() > 10.0


def test_gallery_grid_and_layout():
    assert gallery_grid(1) == (1, 1)
    assert gallery_grid(2) == (2, 1)
    assert gallery_grid(4) == (2, 2)
    assert gallery_grid(5) == (3, 2)
    assert gallery_grid(12) == (4, 3)
    assert gallery_grid(13) == (4, 4)
    assert gallery_grid(17) == (5, 4)
    assert gallery_grid(25) == (5, 5)
    with pytest.raises(ValueError):
        gallery_grid(26)
    for n in range(1, MAX_TILES + 1):
        rects = gallery_layout(n, 1280, 720)
        assert len(rects) == n
        mask = np.zeros((720, 1280), np.int32)
        for r in rects:
            assert r.x >= 0 and r.y >= 0 and r.x + r.w <= 1280 and r.y + r.h <= 720
            assert abs(r.w / r.h - 16 / 9) < 0.02
            mask[r.y : r.y + r.h, r.x : r.x + r.w] += 1
        assert mask.max() == 1  # no overlaps
    rects = gallery_layout(25, 1280, 720)
    assert rects[0].h >= 135 and rects[0].w >= 240
    five = gallery_layout(5, 1280, 720)  # 3 + 2, the short row centred
    left, right = five[3].x, 1280 - (five[4].x + five[4].w)
    assert abs(left - right) <= 1 and five[3].y > five[0].y


def test_random_script_is_deterministic_and_plausible():
    people = _dummy_people(12)
    kw = dict(duration_s=600.0, late_join_prob=0.4, rejoin_prob=0.4, camera_off_prob=0.5)
    a = random_script(people, seed=1, **kw)
    b = random_script(people, seed=1, **kw)
    c = random_script(people, seed=2, **kw)
    assert a.presence == b.presence
    assert a.presence != c.presence
    for pres in a.presence.values():
        assert pres.connected
        for start, end in pres.connected:
            assert 0 <= start < end <= 600.0
        for start, end in pres.camera_off:
            assert 0 < end - start <= 240.0  # one or two merged 30-120 s stretches
            assert any(s <= start and end <= e for s, e in pres.connected)
    late = random_script(people, seed=3, duration_s=600.0, late_join_prob=1.0)
    assert all(p.connected[0][0] >= 60.0 for p in late.presence.values())
    # Truth of a random script is consistent with its intervals.
    truth = ground_truth(a)
    for p in truth.participants:
        assert sum(p.visible_seconds_per_minute) <= sum(p.connected_seconds_per_minute) + 1e-6
        assert sum(p.visible_seconds_per_minute) == pytest.approx(
            sum(e - s for s, e in p.visible), abs=1e-3
        )


def test_script_validation():
    people = _dummy_people(2)
    with pytest.raises(ValueError):
        MeetingScript(duration_s=10, participants=people, width=641)
    with pytest.raises(ValueError):
        MeetingScript(duration_s=10, participants=people, presence={"nobody": Presence.always(10)})
    with pytest.raises(ValueError):
        MeetingScript(duration_s=10, participants=_dummy_people(MAX_TILES + 1))
    with pytest.raises(ValueError):
        Presence(connected=((5.0, 1.0),))
    ok = MeetingScript(duration_s=10, participants=people, fps=5)
    assert ok.n_frames == 50 and ok.presence["p0"] == Presence.always(10)


def test_random_webcams_are_valid_and_varied():
    rng = np.random.default_rng(0)
    easy = [random_webcam(rng, hard=False) for _ in range(50)]
    hard = [random_webcam(rng, hard=True) for _ in range(50)]
    assert np.mean([w.noise_sigma for w in hard]) > np.mean([w.noise_sigma for w in easy])
    assert max(w.scale for w in hard) <= min(w.scale for w in easy) + 1e-9
    assert all(0.3 <= w.face_frac <= 0.6 for w in easy + hard)


def test_full_gallery_frame_has_25_tiles_with_sizeable_faces(faces):
    people = participants_from_faces(faces, seed=4, hard_fraction=0.4)
    people = (people * 2)[:MAX_TILES]
    people = [
        Participant(f"{p.key}-{i}", p.display_name, p.images, p.webcam)
        for i, p in enumerate(people)
    ]
    script = MeetingScript(duration_s=5, participants=people, seed=4)
    img = render_frame(script, 1.0)
    assert img.shape == (720, 1280, 3)
    rects = gallery_layout(25, 1280, 720)
    for r in rects:
        tile = _tile(img, r).astype(np.float32)
        assert tile.std() > 10  # every tile shows a picture
    # Outside the tiles the frame is the dark gallery background.
    assert img[0:2].mean() < 40


def test_photo_helpers(tmp_path):
    rng = np.random.default_rng(0)
    group = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    boxes = np.array([[50, 60, 110, 140, 0.9], [300, 20, 360, 100, 0.8]], np.float32)
    crops = faces_from_group_photo(group, boxes)
    assert len(crops) == 2 and all(c.shape == (250, 250, 3) for c in crops)
    natural = faces_from_group_photo(group, boxes[:, :4], size=None, suppress_others=False)
    assert natural[0].shape == (152, 152, 3)  # 1.9 x the 80 px box, padded at the edge

    photo = rng.integers(0, 255, (250, 250, 3), dtype=np.uint8)
    aug = augment_photo(photo, np.random.default_rng(1), strength=1.0)
    again = augment_photo(photo, np.random.default_rng(1), strength=1.0)
    assert aug.shape == photo.shape and aug.dtype == np.uint8
    assert np.array_equal(aug, again) and not np.array_equal(aug, photo)

    for i, name in enumerate(["10.jpg", "2.jpg", "1.jpg"]):
        d = tmp_path / "Some_Person"
        d.mkdir(exist_ok=True)
        cv2.imwrite(str(d / name), np.full((8, 8, 3), 40 * (i + 1), np.uint8))
    loaded = load_faces_dir(tmp_path)
    assert list(loaded) == ["Some_Person"]
    means = [round(float(img.mean()) / 40) for img in loaded["Some_Person"]]
    assert means == [3, 2, 1]  # 1.jpg, 2.jpg, 10.jpg
    with pytest.raises(FileNotFoundError):
        load_faces_dir(tmp_path / "missing")


def test_zoom_like_webcams_are_still_and_encode_smaller(faces, tmp_path):
    """Zoom-like tiles: the same people and cameras with little head motion (and a
    little more sensor noise, by default); at the same noise, x264 encodes the
    still tiles in fewer bits than the generator's default webcams."""
    people = participants_from_faces(dict(sorted(faces.items())[:4]), seed=3)
    for a, b in zip(people, zoom_like(people), strict=True):
        assert b.webcam.motion == pytest.approx(0.15 * a.webcam.motion)
        assert b.webcam.noise_sigma == pytest.approx(1.5 * a.webcam.noise_sigma)
    still = zoom_like(people, noise=1.0)
    for a, b in zip(people, still, strict=True):
        assert b.webcam.motion == pytest.approx(0.15 * a.webcam.motion)
        assert b.webcam.noise_sigma == a.webcam.noise_sigma
        assert (b.key, b.webcam.scale, b.webcam.gamma) == (a.key, a.webcam.scale, a.webcam.gamma)
    sizes = {}
    for name, group in (("busy", people), ("zoom", still)):
        script = random_script(group, duration_s=8.0, seed=3, fps=15, width=640, height=360)
        script = MeetingScript(  # everyone on camera all along: only the webcams differ
            **{**script.__dict__, "presence": {p.key: Presence.always(8.0) for p in group}}
        )
        video = tmp_path / f"{name}.mp4"
        render_meeting(script, video)
        sizes[name] = bitrate_kbit_s(video, 8.0)
    assert sizes["zoom"] < 0.9 * sizes["busy"], sizes
