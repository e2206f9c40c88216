"""Tests for rollcall.pipeline.decode: sampling by presentation time, rotation, scaling and bad files.

Every fixture is written with PyAV into tmp_path; no external binaries are needed
(one cross-check against the ffmpeg command line runs only when ffmpeg is installed).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shutil
import subprocess
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rollcall.pipeline import decode
from rollcall.pipeline.decode import DecodeStats, RecordingError, probe, sample_frames
from tests.conftest import running_in_ci

W, H = 320, 240


# --------------------------------------------------------------------------- fixtures


def pattern(n: int, w: int = W, h: int = H) -> np.ndarray:
    """Upright picture for frame number n (0..255).

    A red block marks the top-left corner; n is written in binary as eight
    horizontal bands (bit 0 at the top) on the right half. Survives lossy coding.
    """
    img = np.full((h, w, 3), 40, np.uint8)
    img[: h // 4, : w // 4] = (0, 0, 255)
    band = h // 8
    for bit in range(8):
        if n >> bit & 1:
            img[bit * band : (bit + 1) * band, w // 2 :] = 255
    return img


def read_number(img: np.ndarray) -> int:
    """Inverse of pattern() (on an upright image of any size)."""
    h, w = img.shape[:2]
    band = h / 8
    n = 0
    for bit in range(8):
        y0, y1 = int(bit * band + band / 4), int((bit + 1) * band - band / 4)
        if img[y0:y1, w // 2 + w // 8 : w - w // 8].mean() > 128:
            n |= 1 << bit
    return n


def is_upright(img: np.ndarray) -> bool:
    """The red marker is in the top-left corner and nowhere else."""
    h, w = img.shape[:2]

    def red(y: int, x: int) -> bool:
        b, g, r = (int(v) for v in img[y, x])
        return r > 180 and g < 80 and b < 80

    m = 3
    return red(m, m) and not red(m, w - m) and not red(h - m, m) and not red(h - m, w - m)


def write_video(
    path: Path,
    images: list[np.ndarray],
    *,
    rate: int = 25,
    times_ms: list[int] | None = None,
    codec: str = "libx264",
    rotation: int | None = None,
    metadata: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode images (BGR) at a constant rate, or at the given presentation times."""
    h, w = images[0].shape[:2]
    with av.open(str(path), "w", options=options or {}) as out:
        for key, value in (metadata or {}).items():
            out.metadata[key] = value
        opts = {"preset": "ultrafast"} if codec == "libx264" else {}
        stream = out.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            else:
                frame.pts, frame.time_base = i, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def cfr10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 25 fps, 320x240, frame number i drawn into frame i."""
    path = tmp_path_factory.mktemp("cfr") / "cfr10.mp4"
    return write_video(
        path,
        [pattern(i) for i in range(250)],
        metadata={"creation_time": "2024-03-01T10:00:00.000000Z"},
    )


@pytest.fixture(scope="module")
def noisy10(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """10 s at 25 fps with a noisy texture, so every packet has a sizeable payload."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(250):
        img = pattern(i)
        img[H // 4 :, : W // 2] = rng.integers(0, 120, (H - H // 4, W // 2, 3), dtype=np.uint8)
        images.append(img)
    path = tmp_path_factory.mktemp("noisy") / "noisy10.mp4"
    return write_video(path, images).read_bytes()


def collect(path: Path, **kwargs) -> tuple[list, DecodeStats]:
    stats = DecodeStats()
    return list(sample_frames(path, stats=stats, **kwargs)), stats


# --------------------------------------------------------------------------- sampling


def test_constant_rate_one_sample_per_second(cfr10: Path) -> None:
    samples, stats = collect(cfr10, interval_s=1.0)
    assert [s.index for s in samples] == list(range(10))
    assert [s.t for s in samples] == pytest.approx([float(k) for k in range(10)], abs=1e-6)
    assert [read_number(s.image) for s in samples] == [25 * k for k in range(10)]
    for s in samples:
        assert s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
        assert s.image.flags["C_CONTIGUOUS"]
        assert is_upright(s.image)
    assert stats.frames_decoded == 250
    assert stats.corrupt_packets == 0 and stats.corrupt_frames == 0
    assert stats.last_time_s == pytest.approx(9.96)


def test_half_second_interval(cfr10: Path) -> None:
    samples, _ = collect(cfr10, interval_s=0.5)
    assert len(samples) == 20
    assert [s.t for s in samples] == pytest.approx([0.5 * k for k in range(20)], abs=0.021)
    assert [read_number(s.image) for s in samples] == [math.ceil(12.5 * k) for k in range(20)]


def test_only_sampled_frames_are_converted(cfr10: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = decode._to_bgr

    def counting(frame, max_width, st):
        calls.append(frame.time)
        return real(frame, max_width, st)

    monkeypatch.setattr(decode, "_to_bgr", counting)
    samples, stats = collect(cfr10, interval_s=2.0)
    assert len(samples) == 5
    assert len(calls) == 5
    assert stats.frames_converted == 5 and stats.frames_decoded == 250


def test_variable_frame_rate(tmp_path: Path) -> None:
    # 30 fps for 3 s, 5 fps for 3 s, nothing from 6 s to 8.5 s, then two frames.
    times_ms = [round(i * 1000 / 30) for i in range(90)]
    times_ms += [3000 + 200 * i for i in range(15)]
    times_ms += [8500, 9000]
    path = write_video(
        tmp_path / "vfr.mp4", [pattern(i) for i in range(len(times_ms))], times_ms=times_ms
    )
    samples, stats = collect(path, interval_s=1.0)
    ts = [s.t for s in samples]
    # Slots 6 and 7 have no frame: the 8.5 s frame serves slot 8 only, once.
    assert ts == pytest.approx([0, 1, 2, 3, 4, 5, 8.5, 9.0], abs=1e-3)
    slots = [int(t) for t in ts]
    assert len(set(slots)) == len(slots)
    expected = [times_ms.index(round(t * 1000)) for t in ts]
    assert [read_number(s.image) for s in samples] == expected
    assert stats.frames_decoded == len(times_ms)
    assert stats.max_gap_s == pytest.approx(2.7, abs=1e-3)


def test_max_width_downscales_keeping_aspect(tmp_path: Path) -> None:
    path = write_video(tmp_path / "wide.mp4", [pattern(i, 640, 360) for i in range(50)])
    samples, _ = collect(path, max_width=320)
    assert len(samples) == 2
    assert all(s.image.shape == (180, 320, 3) for s in samples)
    assert [read_number(s.image) for s in samples] == [0, 25]
    assert all(is_upright(s.image) for s in samples)
    # Narrower than max_width: untouched.
    samples, _ = collect(path, max_width=1000)
    assert samples[0].image.shape == (360, 640, 3)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_rotation_metadata_gives_upright_images(tmp_path: Path, turns: int) -> None:
    # The stored picture is the upright one turned clockwise; the display matrix turns
    # it back counter-clockwise (FFmpeg convention, checked against the ffmpeg CLI below).
    upright = [pattern(i, 320, 180) for i in range(50)]
    stored = [np.ascontiguousarray(np.rot90(img, -turns)) for img in upright]
    path = write_video(tmp_path / f"rot{turns}.mp4", stored, rotation=90 * turns)

    info = probe(path)
    assert info.rotation == 90 * turns
    assert (info.width, info.height) == (320, 180)

    samples, _ = collect(path)
    assert len(samples) == 2
    for s, n in zip(samples, [0, 25], strict=True):
        assert s.image.shape == (180, 320, 3)
        assert s.image.flags["C_CONTIGUOUS"]
        assert is_upright(s.image)
        assert read_number(s.image) == n

    # max_width applies to the upright picture.
    samples, _ = collect(path, max_width=160)
    assert samples[0].image.shape == (90, 160, 3)
    assert is_upright(samples[0].image) and read_number(samples[0].image) == 0


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None and not running_in_ci(),
    reason="ffmpeg CLI not installed (under CI this fails instead: .ci/run installs it)",
)
def test_rotation_matches_ffmpeg_cli(tmp_path: Path) -> None:
    """The ffmpeg command line auto-rotates like a player; our output must match it."""
    stored = [np.ascontiguousarray(np.rot90(pattern(0, 64, 32), -1))]
    path = write_video(tmp_path / "rot.mp4", stored, rotation=90)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1"]
        + ["-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(32, 64, 3)
    ours = next(sample_frames(path)).image
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs).mean() < 2


def test_stopping_early_closes_cleanly(cfr10: Path) -> None:
    gen = sample_frames(cfr10)
    assert next(gen).index == 0
    assert next(gen).index == 1
    gen.close()


def test_bad_arguments(cfr10: Path) -> None:
    with pytest.raises(ValueError):
        next(sample_frames(cfr10, interval_s=0))
    with pytest.raises(ValueError):
        next(sample_frames(cfr10, max_width=0))


# --------------------------------------------------------------------------- probe


def test_probe(cfr10: Path) -> None:
    info = probe(cfr10)
    assert info.path == cfr10
    assert info.duration_s == pytest.approx(10.0, abs=0.05)
    assert (info.width, info.height, info.rotation) == (W, H, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.codec == "h264"
    assert info.n_frames == 250
    assert info.start_time == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_probe_without_creation_time(tmp_path: Path) -> None:
    path = write_video(tmp_path / "plain.mkv", [pattern(i) for i in range(25)], codec="mpeg4")
    info = probe(path)
    assert info.start_time is None
    assert info.codec == "mpeg4"
    assert info.duration_s == pytest.approx(1.0, abs=0.05)


def test_raw_stream_without_container_duration(tmp_path: Path) -> None:
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(100):
            frame = av.VideoFrame.from_ndarray(pattern(i), format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert probe(path).duration_s == pytest.approx(4.0, abs=0.05)
    samples, _ = collect(path)
    assert [s.t for s in samples] == pytest.approx([0, 1, 2, 3], abs=0.05)
    assert [read_number(s.image) for s in samples] == [0, 25, 50, 75]


# --------------------------------------------------------------------------- bad files


def both_raise(path: Path, *words: str) -> None:
    """probe and sample_frames both raise RecordingError naming the file and the problem."""
    for call in (lambda: probe(path), lambda: list(sample_frames(path))):
        with pytest.raises(RecordingError) as err:
            call()
        message = str(err.value)
        assert str(path) in message
        for word in words:
            assert word in message


def test_missing_file(tmp_path: Path) -> None:
    both_raise(tmp_path / "nope.mp4", "not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    both_raise(path, "empty")


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("Meeting notes: this is not a video.\n" * 50)
    both_raise(path, "not a video")


def test_image_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "photo.mp4"
    with av.open(str(path), "w", format="image2pipe") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = W, H, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(pattern(0), format="bgr24")):
            out.mux(packet)
    both_raise(path, "not a video", "PNG image")


@pytest.mark.parametrize(
    ("name", "fmt", "codec", "sample_fmt"),
    [("talk.m4a", "mp4", "aac", "fltp"), ("talk.wav", "wav", "pcm_s16le", "s16")],
)
def test_audio_only(tmp_path: Path, name: str, fmt: str, codec: str, sample_fmt: str) -> None:
    path = tmp_path / name
    dtype = np.float32 if sample_fmt == "fltp" else np.int16
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=16000, layout="mono")
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype), format=sample_fmt, layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    both_raise(path, "no video stream", "audio")


def test_faststart_mp4_cut_in_half(tmp_path: Path, noisy10: bytes) -> None:
    # moov at the front: the file opens and announces 10 s, the data stops at ~5 s.
    full = tmp_path / "full.mp4"
    full.write_bytes(noisy10)
    fast = tmp_path / "fast.mp4"
    with (
        av.open(str(full)) as src,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as dst,
    ):
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = fast.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data[: len(data) // 10]
    cut = tmp_path / "cut_fast.mp4"
    cut.write_bytes(data[: len(data) // 2])
    both_raise(cut, "truncated", "of 10.0 s")


def test_mp4_with_moov_at_end_cut_in_half(tmp_path: Path, noisy10: bytes) -> None:
    assert noisy10.rfind(b"moov") > len(noisy10) // 2
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(noisy10[: len(noisy10) // 2])
    both_raise(cut, "cannot open", "truncated")


def test_mkv_cut_in_half_reports_how_much_was_decoded(tmp_path: Path) -> None:
    # Matroska keeps its duration in the header and has no index to check, so the
    # truncation shows up only when the data runs out.
    path = write_video(tmp_path / "full.mkv", [pattern(i) for i in range(250)])
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    assert probe(cut).duration_s == pytest.approx(10.0, abs=0.05)
    seen = []
    with pytest.raises(RecordingError, match=r"truncated: decoded \d+\.\d s of 10\.0 s"):
        for s in sample_frames(cut):
            seen.append(s.t)
    assert 2 <= len(seen) <= 8  # the frames before the cut were delivered first


def test_unreadable_packet_is_skipped_with_a_warning(
    tmp_path: Path, noisy10: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    full = tmp_path / "full.mp4"
    full.write_bytes(noisy10)
    with av.open(str(full)) as src:
        entry = src.streams.video[0].index_entries[130]  # a P-frame at 5.2 s
    data = bytearray(noisy10)
    data[entry.pos : entry.pos + 8] = b"\xff" * 8  # an impossible NAL unit length
    path = tmp_path / "glitch.mp4"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="rollcall.pipeline.decode"):
        samples, stats = collect(path)
    assert stats.corrupt_packets == 1
    assert stats.frames_decoded == 249
    assert [s.t for s in samples] == pytest.approx([float(k) for k in range(10)], abs=1e-6)
    # Frame threading reports a decode error a few packets late.
    assert re.search(r"corrupt packet at 5\.[234] s", caplog.text)


def test_random_glitch_decodes_with_a_warning(
    tmp_path: Path, noisy10: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytearray(noisy10)
    middle = len(data) // 2
    data[middle : middle + 2000] = (
        np.random.default_rng(1).integers(0, 256, 2000, np.uint8).tobytes()
    )
    path = tmp_path / "glitch.mp4"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="rollcall.pipeline.decode"):
        samples, stats = collect(path)
    assert len(samples) == 10
    assert stats.corrupt_packets + stats.corrupt_frames >= 1
    assert "corrupt" in caplog.text or "damaged" in caplog.text


def test_long_corrupt_stretch_raises(
    tmp_path: Path, noisy10: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray(noisy10)
    start, size = len(data) // 4, len(data) // 3
    data[start : start + size] = np.random.default_rng(2).integers(0, 256, size, np.uint8).tobytes()
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(data))
    monkeypatch.setattr(decode, "MAX_CORRUPT_SPAN_S", 0.5)
    with pytest.raises(RecordingError, match=r"corrupt data at \d+\.\d s: "):
        list(sample_frames(path))


@pytest.fixture(scope="module")
def small_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], bytes]:
    """3 s noisy videos for every (codec, container) pair, encoded once."""
    rng = np.random.default_rng(3)
    images = [pattern(i) for i in range(75)]
    for img in images:
        img[H // 2 :, : W // 2] = rng.integers(0, 255, (H // 2, W // 2, 3), dtype=np.uint8)
    folder = tmp_path_factory.mktemp("small")
    return {
        (codec, container): write_video(
            folder / f"{codec}.{container}", images, codec=codec
        ).read_bytes()
        for codec in ("libx264", "mpeg4")
        for container in ("mp4", "mkv", "avi")
    }


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
@pytest.mark.parametrize("container", ["mp4", "mkv", "avi"])
@pytest.mark.parametrize(("where", "size"), [(0.5, 300), (0.3, 5000), (0.05, 20000), (0.6, -3)])
def test_garbage_never_escapes_as_another_exception(
    tmp_path: Path,
    small_videos: dict[tuple[str, str], bytes],
    codec: str,
    container: str,
    where: float,
    size: int,
) -> None:
    rng = np.random.default_rng(4)
    data = bytearray(small_videos[codec, container])
    n = size if size > 0 else len(data) // -size
    at = int(len(data) * where)
    data[at : at + n] = rng.integers(0, 256, n, np.uint8).tobytes()[: len(data) - at]
    path = tmp_path / f"damaged.{container}"
    path.write_bytes(bytes(data))
    with contextlib.suppress(RecordingError):
        probe(path)
    try:
        for s in sample_frames(path, max_width=160):
            assert s.image.ndim == 3 and s.image.shape[2] == 3
    except RecordingError as e:
        assert str(path) in str(e)
