"""Enrolling students from photos, and turning enrollments into a roster.

Every photo is checked before it is kept: exactly one face, big and sharp
enough, not a duplicate; a photo that looks more like another enrolled
student than like its own is kept with a warning. A student's template is the
normalised mean of their photo embeddings (the published tools ask for at
least five photos in different poses).

Files are checked before they are decoded: only regular files (no pipes or
devices, no links leading out of an imported folder), at most
``[enrollment] max_photo_bytes`` bytes, a JPEG/PNG/BMP/WebP header with at most
``max_photo_pixels`` pixels. A photo that fails is refused with the reason; the
other photos and students are still enrolled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pluggy
import sqlite_utils

from rollcall.config import EnrollmentConfig
from rollcall.enrollment.masks import ENROLLMENT_MASKS, draw_occlusion
from rollcall.store import storage
from rollcall.types import Face, Roster, SampledFrame

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
#: Image formats accepted, as Pillow names them in the file header.
IMAGE_FORMATS = {"JPEG", "PNG", "BMP", "WEBP", "MPO"}  # MPO: JPEG from some cameras
#: Roster delimiters tried on the header line: comma, semicolon (Excel in many locales), tab.
ROSTER_DELIMITERS = (",", ";", "\t")
UNREADABLE = "not an image file that can be read (use JPEG or PNG)"
ALREADY_ENROLLED = "a photo with this name is already enrolled"


class PhotoRefused(Exception):
    """One photo cannot be used; the message says why (shown to the user)."""


@dataclass(frozen=True, slots=True)
class PhotoCheck:
    """The verdict on one enrollment photo."""

    filename: str
    accepted: bool
    problem: str = ""  # why it was refused
    warnings: tuple[str, ...] = ()
    embedding: np.ndarray | None = None
    #: The mean of the photo's masked copies (None with masked copies off): the student's
    #: masked template is built from these (``load_roster``).
    masked_embedding: np.ndarray | None = None
    #: The mean of the photo's and its low-res copies' crops with the lower face filled
    #: (None when the recognizer cannot make them): the student's filled template.
    filled_embedding: np.ndarray | None = None
    face_px: int = 0
    det_score: float = 0.0
    sharpness: float = 0.0
    width: int = 0
    height: int = 0
    already_enrolled: bool = False  # refused only because the student has this photo


@dataclass(slots=True)
class EnrollmentResult:
    student_id: str
    checks: list[PhotoCheck] = field(default_factory=list)
    photos_total: int = 0  # photos the student has after this run

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.checks)

    @property
    def problem(self) -> str:
        """Why nothing usable was enrolled for the student ("" when something was):
        the student has no photo at all, or every photo given was refused (photos
        the student already has do not count as refused)."""
        given = len(self.checks)
        if self.photos_total == 0:
            if not given:
                return "no photo given, so the student can never be recognised"
            return (
                f"none of the {given} photo(s) could be enrolled, so the student can never "
                "be recognised"
            )
        if given and not self.accepted and any(not c.already_enrolled for c in self.checks):
            return f"none of the {given} photo(s) given could be enrolled"
        return ""


def read_photo_file(path: Path, max_bytes: int, *, folder: Path | None = None) -> bytes:
    """The bytes of one photo file, or :class:`PhotoRefused`.

    Never blocks or reads without bound: pipes, devices and sockets are refused
    before they are read, as are files over ``max_bytes`` and, when ``folder`` is
    given, links that lead out of it."""
    if folder is not None:
        try:
            inside = path.resolve().is_relative_to(folder.resolve())
        except (OSError, RuntimeError):  # a link loop
            inside = False
        if not inside:
            raise PhotoRefused("a link to a file outside the photo folder")
    try:
        before = path.stat()
    except OSError as exc:
        raise PhotoRefused(f"cannot read: {exc.strerror}") from None
    kind = _file_kind(before.st_mode)
    if kind:
        raise PhotoRefused(f"not a photo file but {kind}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PhotoRefused(f"cannot read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        kind = _file_kind(st.st_mode)
        if kind:  # replaced between stat and open
            raise PhotoRefused(f"not a photo file but {kind}")
        if st.st_size == 0:
            raise PhotoRefused("empty file (0 bytes)")
        if st.st_size > max_bytes:
            raise PhotoRefused(_too_many_bytes(st.st_size, max_bytes))
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise PhotoRefused(_too_many_bytes(len(data), max_bytes))
    if not data:
        raise PhotoRefused("empty file (0 bytes)")
    return data


def _file_kind(mode: int) -> str:
    """ "" for a regular file, else what it is."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _too_many_bytes(size: int, max_bytes: int) -> str:
    return (
        f"file too large ({size / 1e6:.1f} MB, at most {max_bytes / 1e6:.1f} MB: "
        "[enrollment] max_photo_bytes)"
    )


def image_header(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) read from the image header without decoding the
    pixels, or :class:`PhotoRefused` for an unknown format or too many pixels."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (width, height) = im.format or "", im.size
    except Image.DecompressionBombError:
        raise PhotoRefused(_too_many_pixels("", max_pixels)) from None
    except Exception:  # any parser error of an untrusted header: not an image we can use
        raise PhotoRefused(UNREADABLE) from None
    if fmt not in IMAGE_FORMATS:
        raise PhotoRefused(f"{fmt} images are not accepted (use JPEG or PNG)")
    if width * height > max_pixels:
        raise PhotoRefused(_too_many_pixels(f"{width}x{height} pixels, ", max_pixels))
    return fmt, width, height


def _too_many_pixels(size: str, max_pixels: int) -> str:
    return (
        f"image too large ({size}at most {max_pixels / 1e6:g} megapixels: "
        "[enrollment] max_photo_pixels); use a smaller copy"
    )


def decode_photo(data: bytes, max_pixels: int) -> np.ndarray:
    """The photo as a BGR image, or :class:`PhotoRefused`; the header is checked first."""
    image_header(data, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise PhotoRefused(UNREADABLE)
    return image


def sharpness_of(image: np.ndarray, face: Face) -> float:
    """Variance of the Laplacian over the face box, normalised to a 112 px face."""
    x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
    h, w = image.shape[:2]
    crop = image[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(
        cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
    )
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


#: Face heights (pixels) of the low-resolution copies every enrollment photo is also
#: embedded at. Gallery tiles show faces of 40-80 px from cheap webcams, while
#: enrollment photos are sharp and large; a template that has seen both matches
#: the video far better (measured: +0.15 cosine for the same person, +0.1 for others).
LOW_RES_FACE_PX = (24, 36, 48)


def low_res_copy(image: np.ndarray, face: Face, face_px: int, seed: int) -> np.ndarray:
    """``image`` as a webcam would show it with the face ``face_px`` high: downscaled,
    a little sensor noise, then scaled back so the keypoints still apply."""
    h, w = image.shape[:2]
    scale = min(1.0, face_px / max(float(face.bbox[3] - face.bbox[1]), 1.0))
    small = cv2.resize(
        image, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    noise = np.random.default_rng(seed).normal(0.0, 4.0, small.shape)
    small = np.clip(small.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def webcam_copies(image: np.ndarray, face: Face) -> list[np.ndarray]:
    """The photo and its :data:`LOW_RES_FACE_PX` low-res copies (fixed seeds): what every
    enrollment embedding of a photo (plain and filled) is the mean over."""
    return [image] + [
        low_res_copy(image, face, face_px, seed=i) for i, face_px in enumerate(LOW_RES_FACE_PX)
    ]


def detect_and_embed(pm: pluggy.PluginManager, image: np.ndarray) -> tuple[list[Face], np.ndarray]:
    frame = SampledFrame(index=0, t=0.0, image=image)
    faces = pm.hook.rollcall_detect_faces(frame=frame) or []
    if not faces:
        return [], np.zeros((0, 0), np.float32)
    return faces, pm.hook.rollcall_embed_faces(frame=frame, faces=faces)


#: Share of a photo's embedding that comes from its masked copies (see
#: :func:`masked_copies`); 0 turns them off. Measured with benchmarks/accuracy.py on
#: held-out faces-lfw meetings (16 tiles, everyone masked): per-minute recall 0.33
#: without masked copies, 0.56 at 0.25 and at 0.4; at 0.4 masked strangers were taken
#: for absent students (2 minutes), at 0.25 never; look-alike impostor minutes as
#: without masked copies (3). Higher weights cost recall on unmasked faces.
MASKED_WEIGHT = 0.25
#: Face height of the low-resolution masked copies (the masked photo is also embedded as is).
MASKED_LOW_RES_PX = 36


def masked_copies(image: np.ndarray, face: Face) -> list[np.ndarray]:
    """The photo with each of :data:`~rollcall.enrollment.masks.ENROLLMENT_MASKS` drawn on
    (a surgical and a cloth mask in colours the meeting generator never uses), each
    as is and as a low-resolution webcam copy. Same size as ``image``: the face's
    keypoints still apply."""
    copies = []
    for i, occlusion in enumerate(ENROLLMENT_MASKS):
        masked = draw_occlusion(image, face.kps, occlusion, seed=100 + i)
        copies.append(masked)
        copies.append(low_res_copy(masked, face, MASKED_LOW_RES_PX, seed=200 + i))
    return copies


def _embed_one(pm: pluggy.PluginManager, image: np.ndarray, face: Face) -> np.ndarray:
    return pm.hook.rollcall_embed_faces(frame=SampledFrame(0, 0.0, image), faces=[face])[0]


def enrollment_vectors(
    pm: pluggy.PluginManager,
    image: np.ndarray,
    face: Face,
    *,
    masked: bool = True,
    copies: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(plain, masked) embeddings of one photo: the photo and its low-res copies
    (``copies``, default :func:`webcam_copies`), and (when ``masked``) its masked
    copies; ``masked`` has 0 rows when off."""
    copies = webcam_copies(image, face) if copies is None else copies
    plain = [_embed_one(pm, copy, face) for copy in copies]
    covered = [_embed_one(pm, copy, face) for copy in masked_copies(image, face)] if masked else []
    dim = len(plain[0])
    return np.stack(plain), np.stack(covered) if covered else np.zeros((0, dim), np.float32)


def filled_embedding(
    pm: pluggy.PluginManager,
    image: np.ndarray,
    face: Face,
    copies: list[np.ndarray] | None = None,
) -> np.ndarray | None:
    """The normalised mean of the filled-crop embeddings (``rollcall_embed_filled_faces``)
    of the photo and its low-res copies (``copies``, default :func:`webcam_copies`), as
    masked faces in a meeting are compared; None when no plugin makes them."""
    copies = webcam_copies(image, face) if copies is None else copies
    vectors = []
    for copy in copies:
        found = pm.hook.rollcall_embed_filled_faces(
            frame=SampledFrame(0, 0.0, copy), faces=[face], roster=None
        )
        if not found or found[0] is None:
            return None
        vectors.append(found[0])
    return _template(np.stack(vectors))


def enrollment_embedding(
    pm: pluggy.PluginManager,
    image: np.ndarray,
    face: Face,
    *,
    masked_weight: float = MASKED_WEIGHT,
) -> np.ndarray:
    """The photo's embedding: normalised mean over the photo and its low-res copies,
    blended with the mean of its masked copies at ``masked_weight`` (so a student in a
    mask in class still resembles their template; 0 = no masked copies)."""
    return enrollment_embeddings(pm, image, face, masked_weight=masked_weight)[0]


def enrollment_embeddings(
    pm: pluggy.PluginManager,
    image: np.ndarray,
    face: Face,
    *,
    masked_weight: float = MASKED_WEIGHT,
    copies: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(the photo's embedding as :func:`enrollment_embedding` makes it, the normalised
    mean of its masked copies or None when ``masked_weight`` is 0); ``copies`` as for
    :func:`enrollment_vectors`."""
    plain, covered = enrollment_vectors(pm, image, face, masked=masked_weight > 0, copies=copies)
    vector = _template(plain)
    masked = _template(covered) if len(covered) else None
    if masked is not None:
        vector = (1.0 - masked_weight) * vector + masked_weight * masked
    return _template(vector[None, :]), masked


def check_photo(
    pm: pluggy.PluginManager,
    data: bytes,
    filename: str,
    settings: EnrollmentConfig,
    own: np.ndarray,
    others: dict[str, np.ndarray],
    own_hashes: dict[str, str],
) -> PhotoCheck:
    """Check one photo against the rules; ``own`` are the student's existing embeddings
    (k, d), ``others`` maps other students' ids to their templates (d,)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest in own_hashes:
        return PhotoCheck(
            filename,
            False,
            f"same file as {own_hashes[digest]} (duplicate)",
            already_enrolled=True,
        )
    try:
        image = decode_photo(data, settings.max_photo_pixels)
    except PhotoRefused as exc:
        return PhotoCheck(filename, False, str(exc))
    faces, embeddings = detect_and_embed(pm, image)
    confident = [i for i, f in enumerate(faces) if f.score >= settings.min_det_score]
    if not confident:
        return PhotoCheck(filename, False, "no face found")
    if len(confident) > 1:
        return PhotoCheck(
            filename, False, f"{len(confident)} faces found; use a photo of the student alone"
        )
    face = faces[confident[0]]
    copies = webcam_copies(image, face)  # made once: the plain and the filled embedding
    embedding, masked_embedding = enrollment_embeddings(
        pm,
        image,
        face,
        masked_weight=MASKED_WEIGHT if settings.masked_copies else 0.0,
        copies=copies,
    )
    x1, y1, x2, y2 = face.bbox
    face_px = int(min(x2 - x1, y2 - y1))
    sharp = sharpness_of(image, face)
    common = dict(
        face_px=face_px,
        det_score=round(face.score, 3),
        sharpness=round(sharp, 1),
        width=int(image.shape[1]),
        height=int(image.shape[0]),
    )
    if face_px < settings.min_face_px:
        return PhotoCheck(
            filename,
            False,
            f"face too small ({face_px} px, need at least {settings.min_face_px} px); "
            "use a closer or larger photo",
            **common,
        )
    if sharp < settings.min_sharpness:
        return PhotoCheck(
            filename,
            False,
            f"photo too blurry (sharpness {sharp:.1f}, need {settings.min_sharpness:g})",
            **common,
        )
    if len(own):
        best = float((own @ embedding).max())
        if best >= settings.duplicate_similarity:
            return PhotoCheck(
                filename,
                False,
                f"near-duplicate of an existing photo (similarity {best:.3f}); "
                "add photos with other poses or lighting instead",
                **common,
            )
    warnings = []
    if others:
        own_score = float(_template(own) @ embedding) if len(own) else None
        other_id, other_template = max(others.items(), key=lambda kv: float(kv[1] @ embedding))
        other_score = float(other_template @ embedding)
        if own_score is not None and other_score > own_score:
            warnings.append(
                f"looks more like {other_id} (similarity {other_score:.2f}) than like the "
                f"student's other photos ({own_score:.2f}); check that it is the right person"
            )
    filled = filled_embedding(pm, image, face, copies)
    return PhotoCheck(
        filename, True, "", tuple(warnings), embedding, masked_embedding, filled, **common
    )


def _template(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


def enroll_photos(
    db: sqlite_utils.Database,
    pm: pluggy.PluginManager,
    model_key: str,
    course_id: str,
    student_id: str,
    photos: list[Path],
    settings: EnrollmentConfig,
    *,
    name: str = "",
    email: str = "",
    folder: Path | None = None,
) -> EnrollmentResult:
    """Create/update the student and store every photo that passes the checks.

    ``folder``: the imported folder the photos come from; links leading out of it
    are refused. A bad photo is refused on its own, never the whole call."""
    roster = load_roster(db, pm, course_id, model_key)
    student_pk = storage.upsert_student(db, course_id, student_id, name, email)
    others = {
        sid: roster.templates[i]
        for i, sid in enumerate(roster.student_ids)
        if sid != student_id and len(roster.photo_embeddings[i])
    }
    existing = storage.photos_of(db, student_pk)
    own_hashes = {p["sha256"]: p["filename"] for p in existing}
    own_list = [
        storage.blob_to_vector(r["vector"])
        for r in db["embeddings"].rows_where(
            "student_pk = ? and model = ?", [student_pk, model_key]
        )
    ]
    existing_names = {p["filename"] for p in existing}
    result = EnrollmentResult(student_id=student_id)
    for path in photos:
        filename = path.name
        if filename in existing_names:
            result.checks.append(
                PhotoCheck(filename, False, ALREADY_ENROLLED, already_enrolled=True)
            )
            continue
        try:
            data = read_photo_file(path, settings.max_photo_bytes, folder=folder)
        except PhotoRefused as exc:
            result.checks.append(PhotoCheck(filename, False, str(exc)))
            continue
        own = np.stack(own_list) if own_list else np.zeros((0, 0), np.float32)
        check = check_photo(pm, data, filename, settings, own, others, own_hashes)
        result.checks.append(check)
        if not check.accepted:
            continue
        photo_id = storage.add_photo(
            db,
            student_pk,
            {
                "filename": filename,
                "sha256": hashlib.sha256(data).hexdigest(),
                "image": data,
                "width": check.width,
                "height": check.height,
                "face_px": check.face_px,
                "det_score": check.det_score,
                "sharpness": check.sharpness,
            },
        )
        storage.save_embedding(
            db,
            photo_id,
            student_pk,
            model_key,
            check.embedding,
            check.masked_embedding,
            check.filled_embedding,
        )
        own_list.append(check.embedding)
        own_hashes[hashlib.sha256(data).hexdigest()] = filename
        existing_names.add(filename)
    result.photos_total = len(existing) + result.accepted
    return result


def roster_delimiter(header: str) -> str | None:
    """The delimiter of a roster whose header line is ``header``: the one of
    ``,`` ``;`` tab that gives a ``student_id`` column, else None."""
    for delimiter in ROSTER_DELIMITERS:
        fields = next(csv.reader([header], delimiter=delimiter), [])
        if "student_id" in (f.strip() for f in fields):
            return delimiter
    return None


def read_roster_csv(path: Path) -> dict[str, dict[str, str]]:
    """student_id -> {name, email} from a roster.csv with a header row; columns are
    separated by commas, semicolons or tabs (found from the header)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = fh.readline()
        delimiter = roster_delimiter(header.rstrip("\r\n"))
        if delimiter is None:
            found = header.strip()[:80] or "an empty first line"
            raise ValueError(
                f"{path}: needs a header row with student_id,name,email (columns separated "
                f"by commas, semicolons or tabs); found {found!r}"
            )
        fh.seek(0)
        reader = csv.DictReader(fh, delimiter=delimiter)
        reader.fieldnames = [f.strip() for f in reader.fieldnames or []]
        return {
            row["student_id"].strip(): {
                "name": (row.get("name") or "").strip(),
                "email": (row.get("email") or "").strip(),
            }
            for row in reader
            if (row.get("student_id") or "").strip()
        }


def photo_folders(root: Path) -> dict[str, list[Path]]:
    """student_id -> photo paths, from ``root/<student_id>/*.jpg``. The paths are
    only listed here, not opened: :func:`enroll_photos` (``folder=root``) refuses
    special files and links leading out of ``root`` one by one."""
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        out[folder.name] = photos
    return out


def embed_missing(
    db: sqlite_utils.Database, pm: pluggy.PluginManager, course_id: str, model_key: str
) -> int:
    """Embed stored photos that have no embedding for ``model_key`` (after a pack change),
    and give the photos embedded before filled templates existed (migration 13) their
    filled-crop embedding."""
    count = 0
    for photo in storage.photos_missing_embeddings(db, course_id, model_key):
        image, best = _stored_face(pm, photo, model_key)
        if best is None:
            continue
        copies = webcam_copies(image, best)
        vector, masked = enrollment_embeddings(pm, image, best, copies=copies)
        filled = filled_embedding(pm, image, best, copies)
        storage.save_embedding(
            db, photo["id"], photo["student_pk"], model_key, vector, masked, filled
        )
        count += 1
    if not pm.hook.rollcall_embed_filled_faces.get_hookimpls():
        return count  # no plugin makes filled crops: nothing to add (and no detection per load)
    for photo in storage.photos_missing_filled(db, course_id, model_key):
        image, best = _stored_face(pm, photo, model_key)
        filled = None if best is None else filled_embedding(pm, image, best)
        if filled is None:
            continue
        storage.save_filled_embedding(db, photo["id"], model_key, filled)
        count += 1
    return count


def _stored_face(
    pm: pluggy.PluginManager, photo: dict, model_key: str
) -> tuple[np.ndarray, Face | None]:
    """A stored photo's image and its most confident face (None, logged, if none)."""
    try:
        image = cv2.imdecode(np.frombuffer(photo["image"], np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    faces, _ = detect_and_embed(pm, image) if image is not None else ([], None)
    if not faces:
        log.warning(
            "stored photo has no detectable face with this model pack; skipped",
            extra={"photo": photo["filename"], "model": model_key},
        )
        return np.zeros((0, 0, 3), np.uint8), None
    return image, faces[int(np.argmax([f.score for f in faces]))]


def load_roster(
    db: sqlite_utils.Database, pm: pluggy.PluginManager, course_id: str, model_key: str
) -> Roster:
    """The course's students with templates for ``model_key`` (re-embedding if needed)."""
    embed_missing(db, pm, course_id, model_key)
    students = storage.course_embeddings(db, course_id, model_key)
    dim = next((s.vectors.shape[1] for s in students if len(s.vectors)), 0)
    templates = np.zeros((len(students), dim), np.float32)
    for i, s in enumerate(students):
        if len(s.vectors):
            templates[i] = _template(s.vectors)
    # Masked templates only when every student has one: a student without (enrolled
    # before they existed, or with masked copies off) could not be told apart from the
    # others by them.
    masked = None
    if students and all(s.masked is not None and len(s.vectors) for s in students):
        masked = np.stack([_template(s.masked) for s in students]).astype(np.float32)
    # Filled templates likewise only when every student has one (see the recognizer's
    # FILL_ROW): a roster without them keeps the masked rule alone.
    filled = None
    if students and all(s.filled is not None and len(s.vectors) for s in students):
        filled = np.stack([_template(s.filled) for s in students]).astype(np.float32)
    return Roster(
        student_keys=tuple(s.student_pk for s in students),
        student_ids=tuple(s.student_id for s in students),
        names=tuple(s.name for s in students),
        templates=templates,
        photo_embeddings=tuple(
            s.vectors if len(s.vectors) else np.zeros((0, dim), np.float32) for s in students
        ),
        masked_templates=masked,
        filled_templates=filled,
    )
