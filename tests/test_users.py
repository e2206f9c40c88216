"""Web app accounts in the store (argon2 hashes, hashed API tokens, sign-in attempts)
and the ``rollcall user`` commands."""

from __future__ import annotations

import io
import sys

import pytest

from rollcall.store import storage, users

PASSWORD = "correct horse battery"


def test_users_store_hashes_passwords_and_tokens(tmp_path):
    db = storage.open_db(tmp_path)
    storage.add_course(db, "C1", "")
    user = users.add_user(db, "A@x.edu", "instructor", PASSWORD, ["C1"])
    assert user.courses == ("C1",) and not user.is_admin and user.can_see("C1")
    assert not user.can_see("C2") and not user.can_see(None)
    row = db["users"].get(user.id)
    assert PASSWORD not in row["password_hash"] and row["password_hash"].startswith("$argon2id$")
    assert users.verify_password(db, "a@x.edu", PASSWORD).id == user.id  # email: any case
    assert users.verify_password(db, "A@x.edu", "wrong password") is None
    assert users.verify_password(db, "nobody@x.edu", PASSWORD) is None
    with pytest.raises(users.UserError, match="already exists"):
        users.add_user(db, "a@x.edu", "admin", PASSWORD)
    with pytest.raises(users.UserError, match="at least 10"):
        users.add_user(db, "b@x.edu", "admin", "short")
    with pytest.raises(users.UserError, match="role"):
        users.add_user(db, "b@x.edu", "root", PASSWORD)
    with pytest.raises(storage.NotFound):
        users.add_user(db, "b@x.edu", "instructor", PASSWORD, ["NOPE"])
    token = users.create_api_token(db, user.id, "script")
    assert token not in str(list(db["api_tokens"].rows))
    assert users.user_for_token(db, token).id == user.id
    assert users.user_for_token(db, token + "x") is None
    changed = users.set_password(db, "A@x.edu", "another long one")
    assert changed.session_version == user.session_version + 1
    assert not users.admin_exists(db)
    users.remove_user(db, "a@x.edu")
    assert users.user_for_token(db, token) is None and users.list_users(db) == []


def test_sign_in_rate_limit_counts_failures(tmp_path):
    db = storage.open_db(tmp_path)
    for _ in range(5):
        assert not users.too_many_attempts(db, "a@x.edu", "1.2.3.4", limit=5, window_s=900)
        users.record_attempt(db, "a@x.edu", "1.2.3.4", False)
    assert users.too_many_attempts(db, "a@x.edu", "5.6.7.8", limit=5, window_s=900)
    assert not users.too_many_attempts(db, "b@x.edu", "5.6.7.8", limit=5, window_s=900)


def test_user_cli(home, monkeypatch, capsys):
    from rollcall.cli.main import main

    assert main(["course", "add", "CS101"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "t@x.edu", "--role", "instructor", "--course", "CS101"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["user", "add", "u@x.edu", "--role", "admin"]) == 1
    assert "at least 10" in capsys.readouterr().err
    assert main(["user", "list"]) == 0
    out = capsys.readouterr().out
    assert "t@x.edu" in out and "CS101" in out and "u@x.edu" not in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("a new password!\n"))
    assert main(["user", "reset-password", "t@x.edu"]) == 0
    db = storage.open_db(home)
    assert users.verify_password(db, "t@x.edu", "a new password!") is not None
    assert main(["user", "token", "t@x.edu", "--name", "ci"]) == 0
    token = capsys.readouterr().out.split()[-1]
    assert users.user_for_token(db, token).email == "t@x.edu"
    assert main(["user", "remove", "t@x.edu"]) == 0
    assert main(["user", "remove", "t@x.edu"]) == 1
    assert users.list_users(db) == []
