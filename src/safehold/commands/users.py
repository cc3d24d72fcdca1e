"""`safehold user` commands: console users and roles.

Passwords never appear on the command line (they would land in shell history and the
process list): they are read from standard input when it is not a terminal (the first
line), and prompted for twice, hidden, when it is.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from safehold.commands.common import JsonOpt, _db, _emit, _errors, _printable, _who, err, out
from safehold.errors import InvalidValue

user_app = typer.Typer(
    help="Console users: create, list, change roles, disable, reset passwords.",
    no_args_is_help=True,
)


def read_password(name: str) -> str:
    """The password from standard input's first line (not a terminal), else prompted twice."""
    from safehold.access.users import check_password

    if sys.stdin is None:
        raise InvalidValue("no password: standard input is closed")
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise InvalidValue(
                "no password on standard input: pipe it in as the first line, e.g. "
                "`safehold user create NAME --role admin < password-file`"
            )
        return check_password(password, name)
    password = typer.prompt(
        f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
    )
    return check_password(password, name)


def _users() -> object:
    from safehold.access.users import Users
    from safehold.audit import AuditLog

    db = _db()
    return Users(db, AuditLog(db))


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="User name: a-z, 0-9, '.', '_', '-'.")],
    role: Annotated[
        str, typer.Option("--role", help="reviewer, lead, admin or auditor.")
    ] = "reviewer",
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the user works for.")] = (
        "default"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Create a console user. The password is read from standard input (first line) when
    it is not a terminal, else prompted for twice; it is never a command-line argument."""
    from safehold.access.users import Users, check_name, check_role

    with _errors(as_json):
        check_name(name)
        check_role(role)
        password = read_password(name)
        users = _users()
        assert isinstance(users, Users)
        info = users.create(name, password, role, tenant=tenant, by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"created {info.role} {_printable(info.name)} (tenant {info.tenant})")


@user_app.command("list")
def user_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's users.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List console users."""
    from safehold.access.users import Users

    with _errors(as_json):
        users = _users()
        assert isinstance(users, Users)
        found = users.list(tenant)
        if as_json:
            _emit({"users": [u.to_dict() for u in found]})
            return
        if not found:
            err.print(
                "no users yet: create the first with `safehold user create NAME --role admin`"
            )
            return
        table = Table(header_style="bold")
        for col in (
            "id",
            "name",
            "role",
            "tenant",
            "blur",
            "daily limit",
            "status",
            "last login (UTC)",
        ):
            table.add_column(col)
        for u in found:
            table.add_row(
                str(u.id),
                _printable(u.name),
                u.role,
                u.tenant,
                str(u.blur),
                str(u.daily_limit) if u.daily_limit is not None else "default",
                "disabled" if u.disabled else "active",
                u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "-",
            )
        out.print(table)


@user_app.command("set-role")
def user_set_role(
    name: str,
    role: Annotated[str, typer.Argument(help="reviewer, lead, admin or auditor.")],
    as_json: JsonOpt = False,
) -> None:
    """Change a user's role (their console sessions end)."""
    from safehold.access.users import Users

    with _errors(as_json):
        users = _users()
        assert isinstance(users, Users)
        info = users.set_role(name, role, by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"{_printable(info.name)} is now {info.role}")


@user_app.command("disable")
def user_disable(name: str, as_json: JsonOpt = False) -> None:
    """Disable a user: no more logins, sessions end, open cases are unassigned."""
    from safehold.access.users import Users

    with _errors(as_json):
        users = _users()
        assert isinstance(users, Users)
        info = users.disable(name, by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"{_printable(info.name)} is disabled")


@user_app.command("passwd")
def user_passwd(name: str, as_json: JsonOpt = False) -> None:
    """Set a new password (standard input's first line, or prompted twice)."""
    from safehold.access.users import Users

    with _errors(as_json):
        users = _users()
        assert isinstance(users, Users)
        users.by_name(name)
        info = users.set_password(name, read_password(name), by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            err.print(f"password of {_printable(info.name)} changed; their sessions ended")


@user_app.command("set-limit")
def user_set_limit(
    name: str,
    items: Annotated[
        str, typer.Argument(help="Items a day before assignment pauses, or 'default'.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set a reviewer's daily reveal limit (wellness)."""
    from safehold.access.users import Users

    with _errors(as_json):
        if items == "default":
            n: int | None = None
        else:
            try:
                n = int(items)
            except ValueError:
                raise InvalidValue("give a whole number of items or 'default'") from None
        users = _users()
        assert isinstance(users, Users)
        info = users.set_daily_limit(name, n, by=_who())
        if as_json:
            _emit(info.to_dict())
        else:
            limit = info.daily_limit if info.daily_limit is not None else "the default"
            err.print(f"{_printable(info.name)}: daily reveal limit {limit}")


def register(app: typer.Typer) -> None:
    """Add the ``user`` group to the main app."""
    app.add_typer(user_app, name="user")
