"""Typed driver errors: the gateway decides retry vs. back-off by type."""


class DriverError(Exception):
    """Base of every error a driver raises. `retry` says whether an immediate retry can help."""

    retry = True


class MeterTimeout(DriverError):
    """The meter did not answer in time (silent meter, broken line, wrong address)."""


class FrameError(DriverError):
    """A frame arrived damaged: CRC/BCC mismatch, truncated, or garbage on the line."""


class ProtocolError(DriverError):
    """A well-formed answer that makes no sense here (exception response, unexpected object)."""

    retry = False


class AuthError(DriverError):
    """The meter refused the password or access level."""

    retry = False


class IdentityMismatch(DriverError):
    """The meter at this address is not the one configured (serial differs)."""

    retry = False

    def __init__(self, expected: str, actual: str):
        super().__init__(f"meter identity mismatch: configured serial {expected!r}, meter reports {actual!r}")
        self.expected = expected
        self.actual = actual


class Unsupported(DriverError):
    """The driver or this meter model cannot do what was asked."""

    retry = False
