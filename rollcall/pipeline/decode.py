"""Read recordings with PyAV: probe their properties and sample frames at a fixed interval.

Only the video stream is decoded. Frames are chosen by their presentation time,
so variable-frame-rate recordings (Zoom drops to a few frames per second when
nothing moves) are sampled correctly, and only the chosen frames are converted
to numpy arrays. Decoding streams packet by packet: memory does not grow with
the length of the recording.

Every problem with the file itself is reported as :class:`RecordingError` with a
message meant for the user ("not a video file", "no video stream",
"truncated: decoded 31.0 s of 60.0 s", ...); no PyAV exception escapes.
Isolated corrupt packets are skipped, counted in :class:`DecodeStats` and logged.

Progress while sampling is ``frame.t / probe(path).duration_s``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import av
import av.error
import numpy as np

from rollcall.types import RecordingInfo, SampledFrame

log = logging.getLogger(__name__)

#: A run of consecutive unreadable packets longer than this many packets, or covering
#: more than this many seconds of video, makes the recording unusable; shorter runs
#: (a network glitch in the recording) are skipped.
MAX_CONSECUTIVE_ERRORS = 250
MAX_CORRUPT_SPAN_S = 10.0
#: A recording whose last decoded frame is earlier than ``duration - max(TOL_S, TOL_FRACTION *
#: duration)`` is reported as truncated.
TRUNCATION_TOLERANCE_S = 2.0
TRUNCATION_TOLERANCE_FRACTION = 0.02
#: How many corrupt packets are logged one by one before only the total is logged.
_LOGGED_ERRORS = 5
#: Frames whose time is this close below a slot boundary still count for the slot
#: (float rounding of pts * time_base).
_SLOT_EPSILON_S = 1e-6
#: Demuxers that read a single still image (a PNG or JPEG renamed to .mp4).
_IMAGE_FORMATS = {"image2", "image2pipe"}
#: Demuxers that turn plain text into a "video" (FFmpeg renders ANSI art from any
#: text file with a .txt/.ans name): such a file is text, not a recording.
_TEXT_FORMATS = {"tty"}
#: First-box types of an ISO base media (MP4/MOV/M4A) file.
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}


class RecordingError(Exception):
    """A recording cannot be used; the message says which file and what is wrong."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(slots=True)
class DecodeStats:
    """Counters filled in by :func:`sample_frames` while it runs (pass one in to read them)."""

    packets: int = 0  # video packets read from the container
    frames_decoded: int = 0
    frames_converted: int = 0  # frames converted to numpy (the sampled ones)
    corrupt_packets: int = 0  # packets skipped because they could not be read or decoded
    corrupt_frames: int = 0  # frames the decoder flagged as corrupt (still used)
    last_time_s: float | None = None  # time of the latest decoded frame
    max_gap_s: float = 0.0  # longest interval between two consecutive decoded frames


def probe(path: str | os.PathLike[str]) -> RecordingInfo:
    """Read the properties of a recording and check that its video can be decoded.

    Decodes only the first frame (for the rotation and the real picture size).
    Raises :class:`RecordingError` for a missing or empty file, a file that is not a
    video (text, image, audio only), a container that cannot be opened, a video
    stream that cannot be decoded, or a file that is visibly truncated.
    """
    p = Path(path)
    with _open(p) as container:
        stream, duration = _checked_stream(container, p)
        frame = _first_frame(container, stream, p)
        if duration is None:
            duration = _scan_duration_s(p)
        rotation = _quarter_turns(getattr(frame, "rotation", 0)) * 90
        width, height = frame.width, frame.height
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate
        fps = float(rate) if rate else None
        n_frames = stream.frames or None
        return RecordingInfo(
            path=p,
            duration_s=duration,
            width=width,
            height=height,
            rotation=rotation,
            fps=fps,
            codec=stream.codec_context.name,
            start_time=_creation_time(container, stream),
            n_frames=n_frames,
        )


def sample_frames(
    path: str | os.PathLike[str],
    interval_s: float = 1.0,
    *,
    max_width: int | None = None,
    stats: DecodeStats | None = None,
) -> Iterator[SampledFrame]:
    """Decode the video stream and yield one upright BGR frame per ``interval_s`` seconds.

    Slot ``k`` covers ``[k * interval_s, (k + 1) * interval_s)`` of presentation time,
    measured from the start of the video stream. The first frame that falls in a
    slot is yielded with its own time ``t``; later frames in the same slot are
    skipped without being converted. When a variable-frame-rate gap leaves slots
    empty, the next frame is yielded once, for the slot it falls in (``t`` tells the
    consumer where it really is). ``t`` over ``probe(path).duration_s`` is the progress.

    Images are rotated as the container's display matrix says, and when
    ``max_width`` is given and the upright picture is wider, scaled down to that
    width keeping the aspect ratio. ``stats``, when given, is updated while decoding.

    Images are normally all the same size, but follow the stream if its resolution
    changes mid-recording.

    Raises :class:`RecordingError` when the file cannot be used (see :func:`probe`),
    when a run of corrupt packets is longer than :data:`MAX_CONSECUTIVE_ERRORS`
    packets or :data:`MAX_CORRUPT_SPAN_S` seconds, when no frame can be decoded, or,
    after the last frame, when the video stops well before the duration the container
    announces (truncated). Isolated corrupt packets are skipped, counted in
    ``stats.corrupt_packets`` and logged.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    if max_width is not None and max_width < 1:
        raise ValueError(f"max_width must be >= 1, got {max_width!r}")
    p = Path(path)
    st = stats if stats is not None else DecodeStats()
    with _open(p) as container:
        stream, duration = _checked_stream(container, p)
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        origin = (
            float(stream.start_time * time_base)
            if stream.start_time is not None and time_base
            else None
        )
        rate = stream.average_rate or stream.guessed_rate
        step = 1.0 / float(rate) if rate else 1.0 / 25.0  # for frames without a pts
        last_slot = -1
        index = 0
        for frame in _decoded_frames(container, stream, p, st):
            origin = _track_time(frame, origin, step, st)
            t = st.last_time_s
            if frame.is_corrupt and st.corrupt_frames <= _LOGGED_ERRORS:
                log.warning("%s: the decoder reports a damaged frame at %.1f s", p, t)
            slot = math.floor((t + _SLOT_EPSILON_S) / interval_s)
            if slot <= last_slot:
                continue  # not sampled: never converted
            last_slot = slot
            try:
                image = _to_bgr(frame, max_width, st)
            except (av.error.FFmpegError, ValueError) as e:
                raise RecordingError(
                    p, f"cannot convert the frame at {t:.1f} s to an image: {_av_text(e)}"
                ) from e
            yield SampledFrame(index=index, t=t, image=image)
            index += 1

    if st.corrupt_packets or st.corrupt_frames:
        log.warning(
            "%s: skipped %d corrupt packet(s), %d damaged frame(s) decoded",
            p,
            st.corrupt_packets,
            st.corrupt_frames,
        )
    if st.frames_decoded == 0:
        detail = f" ({st.corrupt_packets} corrupt packets)" if st.corrupt_packets else ""
        raise RecordingError(p, f"no frame of the video stream could be decoded{detail}")
    if duration is not None and st.last_time_s is not None:
        tolerance = _tolerance_s(duration)
        if st.last_time_s < duration - tolerance:
            raise RecordingError(
                p,
                f"truncated: decoded {st.last_time_s:.1f} s of {duration:.1f} s "
                "(the video data stops early; the file is incomplete or damaged)",
            )


T = TypeVar("T")
_END = object()


@contextmanager
def prefetched(items: Iterator[T], depth: int = 4) -> Iterator[Iterator[T]]:
    """Run the iterator ``items`` (e.g. :func:`sample_frames`) in a thread, ``depth`` ahead.

    Decoding then overlaps with whatever the consumer does with each item (FFmpeg
    and onnxruntime release the GIL). An exception raised by ``items`` is raised
    by the consumer's iteration, in order. Leaving the ``with`` block early stops
    the thread and closes ``items`` (in the thread that ran it); memory stays at
    ``depth`` items.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer
            put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="rollcall-decode", daemon=True)
    thread.start()

    def consume() -> Iterator[T]:
        while True:
            item, exc = buffer.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item

    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------- internals


def _av_text(e: BaseException) -> str:
    """The FFmpeg message of a PyAV exception, without errno and file name."""
    text = getattr(e, "strerror", None)
    return str(text) if text else str(e)


def _open(p: Path) -> av.container.InputContainer:
    if not p.exists():
        raise RecordingError(p, "file not found")
    if p.is_dir():
        raise RecordingError(p, "is a directory, not a video file")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise RecordingError(p, f"cannot read the file: {e.strerror or e}") from e
    if size == 0:
        raise RecordingError(p, "empty file (0 bytes), not a video")
    try:
        return av.open(str(p), mode="r", metadata_errors="replace")
    except av.error.InvalidDataError as e:
        if _looks_like_mp4(p):
            raise RecordingError(
                p,
                "cannot open: the MP4/MOV file is damaged or truncated (its index, the "
                f"'moov' atom, is missing or unreadable; an interrupted download?) ({_av_text(e)})",
            ) from e
        raise RecordingError(p, f"not a video file (no known format: {_av_text(e)})") from e
    except av.error.EOFError as e:
        # FFmpeg took the first bytes for some container and found nothing after them.
        raise RecordingError(p, "not a video file (it ends before any video data)") from e
    except PermissionError as e:
        raise RecordingError(p, "permission denied") from e
    except (av.error.FFmpegError, OSError, UnicodeError) as e:
        raise RecordingError(p, f"cannot open: {_av_text(e)}") from e


def _looks_like_mp4(p: Path) -> bool:
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] in _MP4_BOXES


def _video_stream(container: av.container.InputContainer, p: Path) -> av.video.stream.VideoStream:
    fmt = container.format.name
    if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):  # png_pipe, jpeg_pipe, ...
        kind = "" if fmt in _IMAGE_FORMATS else fmt.removesuffix("_pipe").upper() + " "
        raise RecordingError(p, f"not a video file (it is a single {kind}image)")
    if fmt in _TEXT_FORMATS:
        raise RecordingError(p, "not a video file (it is a text file)")
    candidates = [
        s
        for s in container.streams.video
        if not (s.disposition & av.stream.Disposition.attached_pic)  # cover art
    ]
    if not candidates:
        kinds = sorted({s.type for s in container.streams})
        if kinds == ["subtitle"]:  # a subtitle or other text file FFmpeg can parse
            raise RecordingError(p, "not a video file (it is a text or subtitle file)")
        found = f" (it only has {', '.join(kinds)})" if kinds else " (it has no streams)"
        raise RecordingError(p, f"no video stream{found}")
    try:
        best = container.streams.best("video")
    except (av.error.FFmpegError, ValueError):
        best = None
    stream = best if best in candidates else candidates[0]
    if stream.codec_context is None:
        raise RecordingError(p, "unsupported video codec (no decoder available)")
    return stream


def _checked_stream(
    container: av.container.InputContainer, p: Path
) -> tuple[av.video.stream.VideoStream, float | None]:
    """The recording's video stream and its duration (None when the file records none).

    Raises :class:`RecordingError` as :func:`_video_stream` does, and when the
    index shows the file was cut short (:func:`_check_index`).
    """
    stream = _video_stream(container, p)
    duration = _duration_s(container, stream)
    if duration is not None:
        _check_index(stream, p, duration)
    return stream, duration


def _duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _scan_duration_s(p: Path) -> float:
    """Duration from the packets when the container does not record one (raw streams).

    Reads the file once more from its own handle: raw streams cannot seek back.
    """
    with _open(p) as container:
        return _scan_packets(container, _video_stream(container, p), p)


def _scan_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, p: Path
) -> float:
    start = stream.start_time
    end = None
    count = 0
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue
            count += 1
            if packet.pts is None:
                continue
            if start is None:
                start = packet.pts
            stop = packet.pts + (packet.duration or 0)
            end = stop if end is None else max(end, stop)
    except av.error.FFmpegError as e:
        raise RecordingError(p, f"cannot read the video stream: {_av_text(e)}") from e
    if end is not None and start is not None and stream.time_base:
        return float((end - start) * stream.time_base)
    rate = stream.average_rate or stream.guessed_rate
    if count and rate:  # no timestamps at all: assume the nominal frame rate
        return count / float(rate)
    raise RecordingError(p, "the video stream has no timestamps and no frame rate")


def _tolerance_s(duration: float) -> float:
    """How much shorter than ``duration`` the video may be before it counts as truncated."""
    return max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * duration)


def _check_index(stream: av.video.stream.VideoStream, p: Path, duration: float) -> None:
    """Raise if the container's index points past the end of the file.

    An MP4 with its index at the front ("faststart") that was cut short still
    opens and announces its full duration; its index tells where the data stops.
    """
    entries = getattr(stream, "index_entries", None)  # PyAV >= 16
    n = len(entries) if entries is not None else 0
    if n == 0 or not stream.time_base:
        return
    last = entries[n - 1]
    size = p.stat().st_size
    if last.pos < 0 or last.pos + last.size <= size:
        return
    # Last entry whose data is complete (entries are in file order within a stream).
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        e = entries[mid]
        if e.pos + e.size <= size:
            lo = mid + 1
        else:
            hi = mid
    start = stream.start_time or 0
    available = float((entries[lo].timestamp - start) * stream.time_base) if lo > 0 else 0.0
    tolerance = _tolerance_s(duration)
    if available < duration - tolerance:
        raise RecordingError(
            p,
            f"truncated: the file holds {max(available, 0.0):.1f} s of {duration:.1f} s "
            f"of video ({size} bytes; its index needs {last.pos + last.size})",
        )


def _packets(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    p: Path,
    st: DecodeStats,
) -> Iterator[av.Packet]:
    """The stream's packets; unreadable stretches are skipped, empty packets dropped."""
    consecutive = 0
    while True:
        try:
            for packet in container.demux(stream):
                consecutive = 0
                if packet.size:  # the empty flush packets; the caller drains once itself
                    yield packet
            return
        except av.error.InvalidDataError as e:
            consecutive += 1
            _corrupt(st, p, e, st.last_time_s or 0.0, consecutive, 0.0)
        except (av.error.FFmpegError, OSError) as e:
            raise RecordingError(
                p, f"read error at {st.last_time_s or 0.0:.1f} s: {_av_text(e)}"
            ) from e


def _decoded_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    p: Path,
    st: DecodeStats,
) -> Iterator[av.VideoFrame]:
    """All frames of the stream in presentation order, skipping packets that fail to decode."""
    time_base = stream.time_base
    start = stream.start_time or 0
    run = 0  # consecutive packets that failed to decode
    run_start = 0.0  # time where that run began
    for packet in _packets(container, stream, p, st):
        st.packets += 1
        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError as e:
            if packet.pts is not None and time_base:
                at = float((packet.pts - start) * time_base)
            else:
                at = st.last_time_s or 0.0
            if run == 0:
                run_start = at
            run += 1
            _corrupt(st, p, e, run_start, run, max(at - run_start, 0.0))
            continue
        run = 0
        yield from frames
    # Drain the decoder (frame threading and B-frames hold frames back). The empty
    # packet carries the time base so that the drained frames have times.
    flush = av.Packet()
    flush.time_base = time_base
    try:
        frames = stream.decode(flush)
    except av.error.FFmpegError as e:
        _corrupt(st, p, e, st.last_time_s or 0.0, 1, 0.0)
        frames = []
    yield from frames


def _corrupt(
    st: DecodeStats, p: Path, e: BaseException, at: float, run: int, span_s: float
) -> None:
    """Count a skipped packet; raise when the run of bad packets is too long."""
    st.corrupt_packets += 1
    if run > MAX_CONSECUTIVE_ERRORS or span_s > MAX_CORRUPT_SPAN_S:
        raise RecordingError(
            p,
            f"corrupt data at {at:.1f} s: {_av_text(e)} "
            f"({run} unreadable packets in a row, {span_s:.1f} s of video)",
        ) from e
    if st.corrupt_packets <= _LOGGED_ERRORS:
        log.warning("%s: skipping corrupt packet at %.1f s: %s", p, at + span_s, _av_text(e))


def _track_time(
    frame: av.VideoFrame, origin: float | None, step: float, st: DecodeStats
) -> float | None:
    """Set ``st.last_time_s`` to the frame's time since the stream start; return the origin."""
    st.frames_decoded += 1
    if frame.is_corrupt:
        st.corrupt_frames += 1
    previous = st.last_time_s
    when = frame.time
    if when is None:  # no pts: assume the nominal frame rate
        t = 0.0 if previous is None else previous + step
    else:
        if origin is None:
            origin = when
        t = max(when - origin, 0.0)
    if previous is not None:
        st.max_gap_s = max(st.max_gap_s, t - previous)
        t = max(t, previous)  # out-of-order timestamps in a broken file: never go back
    st.last_time_s = t
    return origin


def _quarter_turns(rotation: float | int | None) -> int:
    """Display-matrix rotation (counter-clockwise degrees) as 0..3 quarter turns."""
    if not rotation:
        return 0
    return round(rotation / 90.0) % 4


def _to_bgr(frame: av.VideoFrame, max_width: int | None, st: DecodeStats) -> np.ndarray:
    """The frame as an upright, contiguous H x W x 3 BGR uint8 array, at most max_width wide."""
    turns = _quarter_turns(getattr(frame, "rotation", 0))
    width, height = frame.width, frame.height
    shown_width = height if turns % 2 else width
    if max_width is not None and shown_width > max_width:
        scale = max_width / shown_width
        if turns % 2:
            out_w, out_h = max(1, round(width * scale)), max_width
        else:
            out_w, out_h = max_width, max(1, round(height * scale))
        image = frame.to_ndarray(width=out_w, height=out_h, format="bgr24", interpolation="AREA")
    else:
        image = frame.to_ndarray(format="bgr24")
    st.frames_converted += 1
    if turns:
        # FFmpeg's display matrix turns the stored picture counter-clockwise, as np.rot90 does.
        image = np.ascontiguousarray(np.rot90(image, turns))
    return image


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, p: Path
) -> av.VideoFrame:
    errors = 0
    last_error: BaseException | None = None
    for packet in _packets(container, stream, p, DecodeStats()):
        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError as e:
            errors += 1
            last_error = e
            if errors > MAX_CONSECUTIVE_ERRORS:
                break
            continue
        if frames:
            return frames[0]
    try:
        frames = stream.decode(None)
    except av.error.FFmpegError as e:
        last_error = e
        frames = []
    if frames:
        return frames[0]
    detail = f": {_av_text(last_error)}" if last_error is not None else ""
    raise RecordingError(
        p, f"the video stream ({stream.codec_context.name}) cannot be decoded{detail}"
    )


def _creation_time(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> datetime | None:
    for metadata in (container.metadata, stream.metadata):
        value = metadata.get("creation_time")
        if not value:
            continue
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when.year > 1970:  # 1904/1970 are "unset" placeholders of some muxers
            return when.astimezone(UTC)
    return None
