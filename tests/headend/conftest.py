"""Fixtures the head-end tests share."""
from __future__ import annotations

from pathlib import Path

import pytest
from alert_servers import SmtpServer


@pytest.fixture
def smtp(tmp_path: Path):
    """A real SMTP server (aiosmtpd) on a free port, for the letters a test expects."""
    with SmtpServer(tmp_path) as s:
        yield s
