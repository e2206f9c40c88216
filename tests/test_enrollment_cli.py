"""Enrollment through the real CLI: photo checks, roster import, removal, SQLite contents."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from rollcall.cli.main import main
from rollcall.enrollment.enroll import load_roster
from rollcall.store import storage
from rollcall.synthetic.demo import bundled_group_photo


def out_of(capsys) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.fixture
def course(home, capsys):
    assert main(["course", "add", "CS101", "--title", "Intro to CS"]) == 0
    capsys.readouterr()
    return "CS101"


def photos(faces_dir: Path, person: str, numbers) -> list[str]:
    return [str(faces_dir / person / f"{n}.jpg") for n in numbers]


def test_import_folder_with_roster_csv(tmp_path, faces_dir, course, home, capsys):
    root = tmp_path / "photos"
    for person in ("Tony_Blair", "Colin_Powell"):
        (root / person).mkdir(parents=True)
        for n in (1, 2, 3):
            shutil.copy(faces_dir / person / f"{n}.jpg", root / person / f"{n}.jpg")
    (root / "roster.csv").write_text(
        "student_id,name,email\nTony_Blair,Tony Blair,tony@example.edu\n"
        "Colin_Powell,Colin Powell,colin@example.edu\nNew_Kid,New Kid,new@example.edu\n"
    )
    # New_Kid is on the roster without photos: enrolled, but can never be present -> exit 1
    assert main(["student", "import", course, str(root)]) == 1
    text = out_of(capsys)
    assert "6 photo(s) enrolled, 0 refused" in text
    assert "fewer than 5 photos" in text
    assert "not enrolled: New_Kid: no photo given" in text
    assert "Tony_Blair:" not in text and "Colin_Powell:" not in text
    assert main(["student", "list", course]) == 0
    listing = out_of(capsys)
    assert "tony@example.edu" in listing and "New Kid" in listing
    db = storage.open_db(home)
    rows = {r["student_id"]: r["photos"] for r in storage.list_students(db, course)}
    assert rows == {"Colin_Powell": 3, "New_Kid": 0, "Tony_Blair": 3}
    assert db["embeddings"].count == 6


def test_photo_checks_refuse_bad_photos(tmp_path, faces_dir, course, home, capsys):
    good = faces_dir / "Hugo_Chavez" / "1.jpg"
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("this is not a photo")
    blank = tmp_path / "wall.jpg"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 180, np.uint8))
    tiny = tmp_path / "tiny.jpg"
    cv2.imwrite(str(tiny), cv2.resize(cv2.imread(str(good)), (70, 70)))
    blurry = tmp_path / "blurry.jpg"
    cv2.imwrite(
        str(blurry),
        cv2.GaussianBlur(cv2.imread(str(faces_dir / "Hugo_Chavez" / "2.jpg")), (0, 0), 5),
    )
    copy = tmp_path / "copy.jpg"
    shutil.copy(good, copy)
    recompressed = tmp_path / "recompressed.jpg"
    cv2.imwrite(str(recompressed), cv2.imread(str(good)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    args = [
        str(good),
        str(text_file),
        str(blank),
        str(tiny),
        str(blurry),
        str(copy),
        str(recompressed),
        str(bundled_group_photo()),
        str(tmp_path / "missing.jpg"),
    ]
    assert main(["student", "add", course, "S1", "--name", "Hugo", *args]) == 0
    text = out_of(capsys)
    assert "ok S1/1.jpg" in text
    assert "notes.jpg: not an image file" in text
    assert "wall.jpg: no face found" in text
    assert "tiny.jpg: face too small" in text
    assert "blurry.jpg: photo too blurry" in text
    assert "copy.jpg: same file as 1.jpg (duplicate)" in text
    assert "recompressed.jpg: near-duplicate" in text
    assert "t1.jpg: 6 faces found" in text
    assert "missing.jpg: cannot read" in text
    assert "1 photo(s) enrolled, 8 refused" in text
    db = storage.open_db(home)
    assert db["photos"].count == 1


def test_photo_of_someone_else_is_kept_with_a_warning(faces_dir, course, home, capsys):
    assert main(["student", "add", course, "A", *photos(faces_dir, "Yao_Ming", (1, 2, 3))]) == 0
    assert (
        main(["student", "add", course, "B", *photos(faces_dir, "Julianne_Moore", (1, 2, 3))]) == 0
    )
    capsys.readouterr()
    assert main(["student", "add", course, "A", *photos(faces_dir, "Julianne_Moore", (4,))]) == 0
    assert "looks more like B" in out_of(capsys)


def test_remove_student_and_photo_delete_everything(faces_dir, course, home, capsys):
    assert (
        main(
            [
                "student",
                "add",
                course,
                "S017",
                "--name",
                "Ana Lima",
                "--email",
                "ana@example.edu",
                *photos(faces_dir, "Norah_Jones", (1, 2, 3)),
            ]
        )
        == 0
    )
    assert main(["student", "add", course, "S018", *photos(faces_dir, "Hu_Jintao", (1, 2))]) == 0
    db = storage.open_db(home)
    assert db["photos"].count == 5 and db["embeddings"].count == 5
    assert main(["photo", "remove", course, "S017", "2.jpg"]) == 0
    assert db["photos"].count == 4 and db["embeddings"].count == 4
    assert main(["photo", "remove", course, "S017", "2.jpg"]) == 1
    assert "has no photo '2.jpg'" in out_of(capsys)
    assert main(["student", "remove", course, "S017"]) == 0
    assert db["students"].count == 1
    assert db["photos"].count == 2 and db["embeddings"].count == 2
    assert (
        db.execute(
            "select count(*) from photos where student_pk not in (select id from students)"
        ).fetchone()[0]
        == 0
    )
    assert main(["student", "remove", course, "S017"]) == 1
    assert "not enrolled" in out_of(capsys)


def test_unknown_course_and_missing_files_fail_clearly(tmp_path, home, capsys):
    assert main(["student", "list", "NOPE"]) == 1
    assert "course 'NOPE' does not exist" in out_of(capsys)
    assert main(["course", "add", "C1"]) == 0
    assert main(["analyze", str(tmp_path / "none.mp4"), "--course", "C1"]) == 1
    assert "does not exist" in out_of(capsys)
    assert main(["student", "import", "C1", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in out_of(capsys)
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze"])
    assert exit_info.value.code == 2


def test_model_pack_change_re_embeds_from_stored_photos(
    faces_dir, course, home, config, plugin_manager
):
    from rollcall.enrollment.enroll import load_roster

    assert main(["student", "add", course, "S1", *photos(faces_dir, "Tony_Blair", (1, 2))]) == 0
    db = storage.open_db(home)
    roster = load_roster(db, plugin_manager, course, "another-pack/recognizer.onnx#1")
    models = {r["model"] for r in db["embeddings"].rows}
    assert len(models) == 2 and "another-pack/recognizer.onnx#1" in models
    assert roster.templates.shape == (1, 128)
    assert abs(float(np.linalg.norm(roster.templates[0])) - 1.0) < 1e-5


def test_missing_models_give_a_clear_error(tmp_path, home, monkeypatch, capsys):
    monkeypatch.setenv("ROLLCALL_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("ROLLCALL_MODELS_CACHE_DIR", str(tmp_path / "no-cache"))
    assert main(["course", "add", "C1"]) == 0
    assert main(["student", "add", "C1", "S1"]) == 1
    text = out_of(capsys)
    assert "not found" in text and "ROLLCALL_MODELS_DIR" in text
    assert "Traceback" not in text


def test_exit_1_when_nothing_usable_is_enrolled_for_a_student(
    tmp_path, faces_dir, course, home, capsys
):
    notes = tmp_path / "notes.jpg"
    notes.write_text("this is not a photo")
    assert main(["student", "add", course, "S1", str(notes)]) == 1
    assert "not enrolled: S1: none of the 1 photo(s) could be enrolled" in out_of(capsys)
    assert main(["student", "add", course, "S2"]) == 1
    assert "not enrolled: S2: no photo given" in out_of(capsys)
    good = photos(faces_dir, "Tony_Blair", (1, 2))
    assert main(["student", "add", course, "S1", *good]) == 0
    assert "not enrolled" not in out_of(capsys)
    # photos the student already has are not failures (re-running an import is fine) ...
    assert main(["student", "add", course, "S1", *good]) == 0
    assert "already enrolled" in out_of(capsys)
    # ... but a call whose every new photo is refused is
    assert main(["student", "add", course, "S1", str(notes)]) == 1
    assert "not enrolled: S1: none of the 1 photo(s) given could be enrolled" in out_of(capsys)


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_roster_delimiter_is_detected(tmp_path, faces_dir, course, home, capsys, delimiter):
    root = tmp_path / "photos"
    (root / "S1").mkdir(parents=True)
    shutil.copy(faces_dir / "Tony_Blair" / "1.jpg", root / "S1" / "1.jpg")
    rows = [["student_id", "name", "email"], ["S1", "Blair, Tony", "tony@example.edu"]]
    (root / "roster.csv").write_text(
        "\n".join(delimiter.join(f'"{v}"' if "," in v else v for v in r) for r in rows) + "\n"
    )
    assert main(["student", "import", course, str(root)]) == 0
    assert main(["student", "list", course]) == 0
    text = out_of(capsys)
    assert "Blair, Tony" in text and "tony@example.edu" in text


def test_roster_without_student_id_header_says_which_delimiters_work(tmp_path, course, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    (root / "roster.csv").write_text("id|name\nS1|Ana\n")
    assert main(["student", "import", course, str(root)]) == 1
    text = out_of(capsys)
    assert "commas, semicolons or tabs" in text and "found 'id|name'" in text


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.timeout(300)
def test_files_that_are_not_photos_are_refused_one_by_one(
    tmp_path, faces_dir, course, home, capsys
):
    from PIL import Image

    root = tmp_path / "photos"
    people = {"A": "Tony_Blair", "B": "Colin_Powell", "C": "Hugo_Chavez"}
    for student, person in people.items():
        (root / student).mkdir(parents=True)
        shutil.copy(faces_dir / person / "1.jpg", root / student / "1.jpg")
    (root / "A" / "empty.jpg").write_bytes(b"")
    (root / "A" / "huge.png").write_bytes(_png_header_only(30000, 30000))
    Image.new("RGB", (64, 64)).save(root / "A" / "anim.jpg", format="GIF")
    (root / "B" / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(root / "B" / "pipe.jpg")
    (root / "B" / "folder.jpg").mkdir()
    (root / "C" / "outside.jpg").symlink_to(faces_dir / "Hugo_Chavez" / "2.jpg")
    (root / "C" / "inside.jpg").symlink_to(root / "A" / "1.jpg")
    assert main(["student", "import", course, str(root)]) == 0
    text = out_of(capsys)
    assert "A/empty.jpg: empty file (0 bytes)" in text
    assert "A/huge.png: image too large" in text and "max_photo_pixels" in text
    assert "A/anim.jpg: GIF images are not accepted" in text
    assert "B/zero.jpg: a link to a file outside the photo folder" in text
    assert "B/pipe.jpg: not a photo file but a named pipe (FIFO)" in text
    assert "B/folder.jpg: not a photo file but a folder" in text
    assert "C/outside.jpg: a link to a file outside the photo folder" in text
    assert "ok C/inside.jpg" in text
    assert "4 photo(s) enrolled, 7 refused" in text
    db = storage.open_db(home)
    rows = {r["student_id"]: r["photos"] for r in storage.list_students(db, course)}
    assert rows == {"A": 1, "B": 1, "C": 2}
    # photos named one by one may be anywhere, but must still be regular files
    assert main(["student", "add", course, "D", "/dev/zero", str(root / "B" / "pipe.jpg")]) == 1
    text = out_of(capsys)
    assert "D/zero: not a photo file but a device" in text
    assert "D/pipe.jpg: not a photo file but a named pipe (FIFO)" in text


def test_photo_size_limits_come_from_config(faces_dir, course, home, monkeypatch, capsys):
    photo = photos(faces_dir, "Tony_Blair", (1,))
    monkeypatch.setenv("ROLLCALL_ENROLLMENT_MAX_PHOTO_BYTES", "10000")  # the photo has 10-20 kB
    assert main(["student", "add", course, "S1", *photo]) == 1
    assert "1.jpg: file too large" in out_of(capsys)
    monkeypatch.delenv("ROLLCALL_ENROLLMENT_MAX_PHOTO_BYTES")
    monkeypatch.setenv("ROLLCALL_ENROLLMENT_MAX_PHOTO_PIXELS", "10000")  # it has 250x250
    assert main(["student", "add", course, "S1", *photo]) == 1
    assert "1.jpg: image too large (250x250 pixels, at most 0.01 megapixels" in out_of(capsys)


def _face_of(plugin_manager, image):
    from rollcall.enrollment.enroll import detect_and_embed

    found, _ = detect_and_embed(plugin_manager, image)
    return max(found, key=lambda f: f.score)


def test_enrollment_embeds_masked_copies_of_every_photo(faces_dir, plugin_manager):
    from rollcall.enrollment.enroll import enrollment_vectors, masked_copies
    from rollcall.enrollment.masks import ENROLLMENT_MASKS

    image = cv2.imread(str(faces_dir / "Tony_Blair" / "1.jpg"))
    face = _face_of(plugin_manager, image)
    copies = masked_copies(image, face)
    assert len(copies) == 2 * len(ENROLLMENT_MASKS)
    (_, _), (_, _), _, (mlx, mly), (mrx, _) = face.kps.astype(int)
    for copy in copies:
        assert copy.shape == image.shape
        mouth = np.abs(
            copy[mly - 3 : mly + 4, mlx : mrx + 1].astype(int)
            - image[mly - 3 : mly + 4, mlx : mrx + 1]
        )
        assert mouth.mean() > 12  # the mouth is covered
    plain, masked = enrollment_vectors(plugin_manager, image, face)
    assert plain.shape == (4, 128) and masked.shape == (2 * len(ENROLLMENT_MASKS), 128)
    assert np.allclose(np.linalg.norm(masked, axis=1), 1.0, atol=1e-4)
    _, none = enrollment_vectors(plugin_manager, image, face, masked=False)
    assert none.shape == (0, 128)


def test_masked_enrollment_brings_a_masked_face_closer(faces_dir, plugin_manager):
    """A student's other photo in a generator mask (a colour enrollment never draws) is
    more similar to a template with masked copies than to one without."""
    from rollcall.enrollment.enroll import detect_and_embed, enrollment_embedding
    from rollcall.enrollment.masks import GENERATOR_COLOURS, Occlusion, draw_occlusion

    gains = []
    for person in ("Tony_Blair", "Angelina_Jolie", "Hugo_Chavez", "Yao_Ming"):
        enrolled = cv2.imread(str(faces_dir / person / "1.jpg"))
        face = _face_of(plugin_manager, enrolled)
        with_masks = enrollment_embedding(plugin_manager, enrolled, face)
        without = enrollment_embedding(plugin_manager, enrolled, face, masked_weight=0.0)
        assert not np.allclose(with_masks, without)
        probe = cv2.imread(str(faces_dir / person / "2.jpg"))
        probe_face = _face_of(plugin_manager, probe)
        occ = Occlusion("cloth", GENERATOR_COLOURS["cloth"][0])
        masked_probe = draw_occlusion(probe, probe_face.kps, occ, seed=3)
        found, emb = detect_and_embed(plugin_manager, masked_probe)
        vec = emb[int(np.argmax([f.score for f in found]))]
        gains.append(float(vec @ with_masks) - float(vec @ without))
    assert min(gains) > 0.0 and np.mean(gains) > 0.03, gains


def test_masked_copies_can_be_turned_off(faces_dir, course, home, monkeypatch, plugin_manager):
    from rollcall.enrollment.enroll import enrollment_embedding

    path = faces_dir / "Tony_Blair" / "1.jpg"
    monkeypatch.setenv("ROLLCALL_ENROLLMENT_MASKED_COPIES", "false")
    assert main(["student", "add", course, "S1", str(path)]) == 0
    db = storage.open_db(home)
    stored = storage.blob_to_vector(next(iter(db["embeddings"].rows))["vector"])
    image = cv2.imread(str(path))
    face = _face_of(plugin_manager, image)
    plain = enrollment_embedding(plugin_manager, image, face, masked_weight=0.0)
    assert float(stored @ plain) > 0.999
    # No masked copies, so no masked template: faces judged masked are not matched by it.
    assert next(iter(db["embeddings"].rows))["masked_vector"] is None
    assert load_roster(db, plugin_manager, course, stored_model(db)).masked_templates is None


def stored_model(db) -> str:
    return next(iter(db["embeddings"].rows))["model"]


def test_enrollment_keeps_a_masked_template(faces_dir, course, home, plugin_manager):
    """Every photo stores the mean of its masked copies; the roster has a masked template
    per student, the mean of those, for the recognizer's masked rule."""
    from rollcall.enrollment.enroll import _template, enrollment_vectors

    paths = [faces_dir / "Tony_Blair" / f"{k}.jpg" for k in (1, 2)]
    assert main(["student", "add", course, "S1", *map(str, paths)]) == 0
    assert main(["student", "add", course, "S2", str(faces_dir / "Yao_Ming" / "1.jpg")]) == 0
    db = storage.open_db(home)
    rows = list(db["embeddings"].rows_where(order_by="id"))
    assert all(r["masked_vector"] for r in rows)
    image = cv2.imread(str(paths[0]))
    _, masked = enrollment_vectors(plugin_manager, image, _face_of(plugin_manager, image))
    first = storage.blob_to_vector(rows[0]["masked_vector"])
    assert float(first @ _template(masked)) > 0.999
    roster = load_roster(db, plugin_manager, course, stored_model(db))
    assert roster.masked_templates is not None and roster.masked_templates.shape == (2, 128)
    both = np.stack([storage.blob_to_vector(r["masked_vector"]) for r in rows[:2]])
    assert float(roster.masked_templates[0] @ _template(both)) > 0.999


def test_enrollment_keeps_a_filled_template(faces_dir, course, home, plugin_manager):
    """Every photo stores the mean of its filled-crop embeddings (the photo and its
    low-res copies with the lower face filled); the roster has a filled template per
    student, the mean of those, for the recognizer's masked tracks."""
    from rollcall.enrollment.enroll import _template, filled_embedding

    paths = [faces_dir / "Tony_Blair" / f"{k}.jpg" for k in (1, 2)]
    assert main(["student", "add", course, "S1", *map(str, paths)]) == 0
    assert main(["student", "add", course, "S2", str(faces_dir / "Yao_Ming" / "1.jpg")]) == 0
    db = storage.open_db(home)
    rows = list(db["embeddings"].rows_where(order_by="id"))
    assert all(r["filled_vector"] for r in rows)
    image = cv2.imread(str(paths[0]))
    first = storage.blob_to_vector(rows[0]["filled_vector"])
    expected = filled_embedding(plugin_manager, image, _face_of(plugin_manager, image))
    assert expected is not None and float(first @ expected) > 0.999
    # Not the plain embedding: the lower face is filled.
    assert float(first @ storage.blob_to_vector(rows[0]["vector"])) < 0.95
    roster = load_roster(db, plugin_manager, course, stored_model(db))
    assert roster.filled_templates is not None and roster.filled_templates.shape == (2, 128)
    both = np.stack([storage.blob_to_vector(r["filled_vector"]) for r in rows[:2]])
    assert float(roster.filled_templates[0] @ _template(both)) > 0.999


def test_migration_13_upgrades_a_version_12_database(faces_dir, course, home, plugin_manager):
    """A database of version 12 (embeddings without ``filled_vector``) gets the column;
    its photos get their filled-crop embeddings when the roster is next loaded, the same
    as enrollment makes them now."""
    import sqlite3

    from rollcall.store import schema

    assert main(["student", "add", course, "S1", str(faces_dir / "Tony_Blair" / "1.jpg")]) == 0
    assert main(["student", "add", course, "S2", str(faces_dir / "Yao_Ming" / "1.jpg")]) == 0
    db = storage.open_db(home)
    enrolled = [storage.blob_to_vector(r["filled_vector"]) for r in db["embeddings"].rows]
    db.conn.close()
    conn = sqlite3.connect(home / "rollcall.db")
    conn.execute("alter table embeddings drop column filled_vector")
    conn.execute("pragma user_version = 12")
    conn.commit()
    conn.close()
    db = storage.open_db(home)
    assert schema.schema_version(db) == schema.SCHEMA_VERSION == 13
    assert all(r["filled_vector"] is None for r in db["embeddings"].rows)
    # Until then the roster has no filled templates: masked tracks keep the masked rule.
    assert storage.course_embeddings(db, course, stored_model(db))[0].filled is None
    roster = load_roster(db, plugin_manager, course, stored_model(db))
    assert roster.filled_templates is not None and roster.masked_templates is not None
    rows = list(db["embeddings"].rows_where(order_by="id"))
    for row, before in zip(rows, enrolled, strict=True):
        assert float(storage.blob_to_vector(row["filled_vector"]) @ before) > 0.999
    assert storage.photos_missing_filled(db, course, stored_model(db)) == []
