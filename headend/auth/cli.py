"""`askue users …` (or `python -m askue.headend.auth.cli`): create operator users,
reset passwords, deactivate. The first admin is made here; after that admins
manage users on the web page. Passwords are read from stdin or a prompt, never
from the command line (it would land in the shell history)."""
from __future__ import annotations

import argparse
import getpass
import sys

from askue.headend.auth.permissions import STAFF_ROLES

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="head-end YAML settings (env ASKUE_<FIELD> overrides it)")
    parser.add_argument("--dsn", help="PostgreSQL DSN (overrides the config)")
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION")
    c = sub.add_parser("create", help="create a user")
    c.add_argument("--login", required=True)
    # customers are made with their accounts: `askue headend customers import` or the «Потребители» page
    c.add_argument("--role", required=True, choices=STAFF_ROLES)
    c.add_argument("--org", action="append", help="organisation code (repeatable; required for org_admin)")
    c.add_argument("--name", help="display name")
    c.add_argument("--lang", choices=("ru", "en"), default="ru")
    c.add_argument("--email", help="where password reset links go (the user can change it on «Безопасность»)")
    c.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p = sub.add_parser("passwd", help="set a user's password")
    p.add_argument("--login", required=True)
    p.add_argument("--password-stdin", action="store_true")
    d = sub.add_parser("deactivate", help="block a user and end their sessions")
    d.add_argument("--login", required=True)
    o = sub.add_parser("totp-off", help="switch off a user's second factor (lost phone and recovery codes)")
    o.add_argument("--login", required=True)
    sub.add_parser("list", help="list users")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def run(args) -> int:
    from askue.headend.auth import audit
    from askue.headend.auth.passwords import check_policy, hash_password
    from askue.headend.auth.users import UserError, create_user
    from askue.headend.config import ConfigError, load_settings

    try:
        dsn = load_settings(args.config, dsn=args.dsn).dsn
    except ConfigError as e:
        print(f"askue users: {e}", file=sys.stderr)
        return EXIT_USAGE
    cmd = getattr(args, "users_command", None)
    if cmd is None:
        print("askue users: choose an action: create, passwd, deactivate, totp-off or list", file=sys.stderr)
        return EXIT_USAGE
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if cmd == "list":
                for login, role, orgs, active in conn.execute(
                        "SELECT u.login, u.role, ARRAY(SELECT code FROM organisations WHERE id = ANY(u.org_ids)), "
                        "u.active FROM users u ORDER BY u.login"):
                    print(f"{login}\t{role}\t{','.join(orgs) or '*'}\t{'active' if active else 'blocked'}")
                return EXIT_OK
            if cmd == "deactivate":
                n = conn.execute("UPDATE users SET active = false WHERE login = %s", (args.login,)).rowcount
                conn.execute("DELETE FROM web_sessions WHERE user_id IN (SELECT id FROM users WHERE login = %s)",
                             (args.login,))
                if not n:
                    print(f"askue users: no user {args.login!r}", file=sys.stderr)
                    return EXIT_FAILURE
                audit.record_sync(conn, "cli", "user_deactivate", "user", args.login)
                return EXIT_OK
            if cmd == "totp-off":
                from askue.headend.auth.totp import DISABLE_SQL

                found = conn.execute("SELECT id FROM users WHERE login = %s", (args.login,)).fetchone()
                n = conn.execute(DISABLE_SQL[0], found).rowcount if found else 0
                if n:
                    conn.execute(DISABLE_SQL[1], found)
                if not n:
                    print(f"askue users: {args.login!r} is not a user with the second factor on", file=sys.stderr)
                    return EXIT_FAILURE
                audit.record_sync(conn, "cli", "totp_disable", "user", args.login)
                print(f"second factor of {args.login} switched off")
                return EXIT_OK
            if cmd == "create" and args.email:
                if "@" not in args.email or any(ch.isspace() for ch in args.email.strip()):
                    raise UserError(f"--email {args.email!r} is not an e-mail address (name@example.ru)")
                if conn.execute("SELECT 1 FROM users WHERE lower(email) = lower(%s)", (args.email.strip(),)).fetchone():
                    raise UserError(f"--email {args.email!r} belongs to another user")
            password = _password(args.password_stdin)
            if cmd == "create":
                u = create_user(conn, args.login, password, args.role, args.org, args.name, args.lang)
                if args.email:
                    conn.execute("UPDATE users SET email = %s WHERE id = %s", (args.email.strip(), u.id))
                print(f"created {u.login} ({u.role})")
            else:
                check_policy(password, args.login)
                n = conn.execute("UPDATE users SET password_hash = %s, password_changed_at = now() WHERE login = %s",
                                 (hash_password(password), args.login)).rowcount
                if not n:
                    print(f"askue users: no user {args.login!r}", file=sys.stderr)
                    return EXIT_FAILURE
                print(f"password of {args.login} changed")
            audit.record_sync(conn, "cli", "user_" + cmd, "user", args.login)
    except (UserError, ValueError) as e:
        print(f"askue users: {e}", file=sys.stderr)
        return EXIT_USAGE
    except psycopg.OperationalError as e:
        print(f"askue users: cannot reach the database: {str(e).strip()}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="askue users", description="operator users of the head-end web pages")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
