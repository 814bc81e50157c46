"""`digest users …`: the people who log in to the desk and the console, and API tokens."""

from __future__ import annotations

import sys

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from digest.app import App
from digest.cli.common import print_table, say, when, with_app
from digest.errors import InvalidInput
from digest.models import EDITOR, ROLES, ApiToken, User
from digest.users import (
    all_users,
    create_user,
    get_user,
    make_token,
    revoke_token,
    set_disabled,
    set_password,
    set_role,
)

_stdin_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input (for scripts).")


@click.group("users")
def users() -> None:
    """Editors and admins of the web app, and their API tokens."""


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default=EDITOR, show_default=True,
              help="editor: the desk. admin: the desk and the console.")
@click.option("--name", default="", help="Shown in the web app.")
@_stdin_option
@with_app
def users_add(app: App, email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create a user who logs in with EMAIL and a password (asked for, never an option)."""
    password = _password(password_stdin)
    with app.sessions() as s:
        user = create_user(s, email, role=role, password=password, name=name, now=app.clock())
        s.commit()
        say(f"Added {user.email} as {user.role}. They log in at "
            f"{app.settings['public_url']}/login")


@users.command("ls")
@with_app
def users_ls(app: App) -> None:
    """Every user, their role and last login."""
    with app.sessions() as s:
        table = Table("email", "name", "role", "status", "last login", "tokens")
        for user in all_users(s):
            live = sum(1 for t in user.tokens if t.revoked_at is None)
            table.add_row(escape(user.email), escape(user.name), user.role,
                          "disabled" if user.disabled else "active",
                          when(user.last_login_at), str(live))
    print_table(table)


@users.command("set")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), help="A new role; their sessions end.")
@click.option("--name", help="A new display name.")
@click.option("--disable/--enable", default=None,
              help="A disabled user cannot log in; their sessions and tokens stop working.")
@with_app
def users_set(app: App, email: str, role: str | None, name: str | None,
              disable: bool | None) -> None:
    """Change a user's role, name, or whether they may log in."""
    if role is None and name is None and disable is None:
        raise click.UsageError("nothing to change; give --role, --name, --disable or --enable")
    with app.sessions() as s:
        user = get_user(s, email)
        if role is not None:
            set_role(user, role)
        if name is not None:
            user.name = name.strip()
        if disable is not None:
            set_disabled(user, disable)
        s.commit()
        state = "disabled" if user.disabled else "active"
        say(f"{user.email}: {user.role}, {state}.")


@users.command("passwd")
@click.argument("email")
@_stdin_option
@with_app
def users_passwd(app: App, email: str, password_stdin: bool) -> None:
    """Set a user's password; every session of theirs ends."""
    password = _password(password_stdin)
    with app.sessions() as s:
        user = get_user(s, email)
        set_password(user, password)
        s.commit()
    say(f"New password set for {email}; they log in again everywhere.")


@users.command("rm")
@click.argument("email")
@with_app
def users_rm(app: App, email: str) -> None:
    """Delete a user and their API tokens."""
    with app.sessions() as s:
        user = get_user(s, email)
        s.delete(user)
        s.commit()
    say(f"Removed {email} and their API tokens.")


@users.group("token")
def token() -> None:
    """Bearer tokens for the JSON API; each acts with its user's role."""


@token.command("add")
@click.argument("email")
@click.option("--name", default="", help="What it is for, e.g. 'zapier'.")
@with_app
def token_add(app: App, email: str, name: str) -> None:
    """Make a token for EMAIL's user and print it. It is shown only this once."""
    with app.sessions() as s:
        user = get_user(s, email)
        row, raw = make_token(s, user, name=name, now=app.clock())
        s.commit()
        say(f"Token {row.id} for {user.email} ({user.role}). Keep it secret; it is not "
            "shown again:")
    click.echo(raw)


@token.command("ls")
@click.argument("email", required=False)
@with_app
def token_ls(app: App, email: str | None) -> None:
    """API tokens (only their first characters), of one user or all."""
    with app.sessions() as s:
        query = select(ApiToken).join(ApiToken.user).order_by(User.email, ApiToken.id)
        if email:
            query = query.where(User.id == get_user(s, email).id)
        table = Table("id", "user", "name", "starts with", "created", "last used", "status")
        for row in s.scalars(query):
            table.add_row(str(row.id), escape(row.user.email), escape(row.name),
                          f"{row.prefix}…", when(row.created_at), when(row.last_used_at),
                          "revoked" if row.revoked_at else "active")
    print_table(table)


@token.command("revoke")
@click.argument("token_id", type=int)
@with_app
def token_revoke(app: App, token_id: int) -> None:
    """Stop a token from working, at once."""
    with app.sessions() as s:
        row = revoke_token(s, token_id, now=app.clock())
        s.commit()
        say(f"Token {row.id} ({row.prefix}…) of {row.user.email} is revoked.")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for a password; pipe it in with "
                           "--password-stdin")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value
