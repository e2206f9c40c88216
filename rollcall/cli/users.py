"""``rollcall user add|list|remove|reset-password|token``: web app accounts.

The password is asked for on a terminal, or read as the first line of standard
input when that is not a terminal (scripts). ``register(sub)`` adds the ``user``
group to the CLI's argparse subparsers; each command has the CLI's
``(args, config, console) -> exit code`` signature.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rollcall.cli.args import command, command_group
from rollcall.cli.common import CliError, open_db
from rollcall.config import Config
from rollcall.store import users


def read_password(prompt: str = "Password: ") -> str:
    """A new password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise CliError("the two passwords differ")
        password = first
    else:
        password = (sys.stdin.readline() if sys.stdin else "").rstrip("\r\n")
    try:
        users.check_password(password)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    return password


def cmd_user_add(args: argparse.Namespace, config: Config, console: Console) -> int:
    if args.role == users.ADMIN and args.course:
        raise CliError("an admin sees every course: --course is for instructors")
    password = read_password()
    try:
        user = users.add_user(open_db(config), args.email, args.role, password, args.course)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    courses = f" for {', '.join(user.courses)}" if user.courses else ""
    console.print(f"user {escape(user.email)} added ({user.role}{escape(courses)})")
    return 0


def cmd_user_list(args: argparse.Namespace, config: Config, console: Console) -> int:
    table = Table("email", "role", "courses", "created")
    for user in users.list_users(open_db(config)):
        courses = "all" if user.is_admin else (", ".join(user.courses) or "-")
        table.add_row(escape(user.email), user.role, escape(courses), user.created_at)
    console.print(table)
    return 0


def cmd_user_remove(args: argparse.Namespace, config: Config, console: Console) -> int:
    user = users.remove_user(open_db(config), args.email)
    console.print(f"user {escape(user.email)} removed; their sessions and API tokens end")
    return 0


def cmd_user_reset_password(args: argparse.Namespace, config: Config, console: Console) -> int:
    db = open_db(config)
    users.user_by_email(db, args.email)  # unknown user: fail before asking
    password = read_password("New password: ")
    try:
        user = users.set_password(db, args.email, password)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    console.print(f"password of {escape(user.email)} changed; their open sessions end")
    return 0


def cmd_user_token(args: argparse.Namespace, config: Config, console: Console) -> int:
    db = open_db(config)
    user = users.user_by_email(db, args.email)
    token = users.create_api_token(db, user.id, args.name)
    console.print(token, highlight=False, soft_wrap=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``user`` command group to the CLI's subparsers."""
    group = command_group(sub, "user", "web app accounts (admins and instructors)")
    p = command(group, "add", cmd_user_add, "add an account (password from the terminal or stdin)")
    p.add_argument("email")
    p.add_argument("--role", required=True, choices=users.ROLES)
    p.add_argument(
        "--course", action="append", default=[], help="a course the instructor teaches (repeat)"
    )
    command(group, "list", cmd_user_list, "list accounts")
    p = command(group, "remove", cmd_user_remove, "remove an account")
    p.add_argument("email")
    p = command(group, "reset-password", cmd_user_reset_password, "set a new password")
    p.add_argument("email")
    p = command(group, "token", cmd_user_token, "create an API token for scripts (printed once)")
    p.add_argument("email")
    p.add_argument("--name", default="", help="what the token is for")
