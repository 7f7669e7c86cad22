"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile) and the
password policy every new password meets, whoever sets it (the user, an admin, the CLI,
a reset link).

The policy follows NIST SP 800-63B rather than composition rules: long enough, not the
login or the person's name, not a word from the list of passwords people pick first
(keyboard rows, digit runs, «пароль»), not one character repeated.
"""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 200
_hasher = PasswordHasher()
# Verifying against this keeps an unknown login as slow as a wrong password, so
# timing does not tell which logins exist.
_DUMMY = _hasher.hash("askue-no-such-user")

# What people type first; compared case-insensitively, also with a trailing run of digits or «!» cut off.
COMMON = frozenset("""
password passw0rd password1 qwerty qwertyui qwertyuiop qwerty123 qwe123 asdfgh asdfghjk asdfghjkl zxcvbnm
1q2w3e4r 1q2w3e4r5t 1qaz2wsx qazwsx qazwsxedc abc123 abcdef abcdefgh iloveyou letmein welcome admin
administrator root user login master dragon monkey football baseball superman batman trustno1 sunshine
princess starwars whatever changeme secret default askue energy counter meter
пароль пароль1 парольпароль йцукен йцукенг йцукенгш фывапр фывапрол ячсмит привет любовь секрет админ
администратор логин счётчик счетчик энергия
""".split())


class PasswordPolicyError(ValueError):
    """A new password that does not meet the policy; `message_ru` is what the person reads."""

    def __init__(self, message: str, message_ru: str) -> None:
        super().__init__(message)
        self.message_ru = message_ru


def _is_run(s: str) -> bool:
    """abcdefgh, 12345678, 87654321: each character one step from the previous one."""
    steps = {ord(b) - ord(a) for a, b in zip(s, s[1:], strict=False)}
    return len(steps) == 1 and steps <= {1, -1}


def check_policy(password: str, login: str = "", name: str | None = None) -> None:
    """Raises PasswordPolicyError saying what is wrong and how to fix it."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"the password must have at least {MIN_LENGTH} characters",
                                  f"пароль должен содержать не меньше {MIN_LENGTH} символов")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"the password may have at most {MAX_LENGTH} characters",
                                  f"пароль может содержать не больше {MAX_LENGTH} символов")
    low = password.strip().lower()
    who = login.strip().lower()
    if who and who == low:
        raise PasswordPolicyError("the password must differ from the login", "пароль не должен совпадать с логином")
    if who and (who in low if len(who) >= 3 else who == low):
        raise PasswordPolicyError("the password must not contain the login",
                                  "пароль не должен содержать логин")
    for word in (name or "").lower().replace(".", " ").split():
        if len(word) >= 4 and word in low:
            raise PasswordPolicyError("the password must not contain your name",
                                      "пароль не должен содержать ваше имя или фамилию")
    if len(set(low)) <= 2 or _is_run(low):
        raise PasswordPolicyError("the password is too simple: avoid repeated characters and runs like 12345678",
                                  "пароль слишком простой: не используйте повторы и ряды вроде 12345678")
    core = low.rstrip("0123456789!.")
    if low in COMMON or core in COMMON or _is_run(core) and len(core) >= 4:
        raise PasswordPolicyError("this password is among the first ones people try; choose another, e.g. "
                                  "three or four unrelated words",
                                  "такой пароль подбирают первым; придумайте другой, например из трёх-четырёх "
                                  "не связанных слов")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing or damaged hash never matches."""
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
