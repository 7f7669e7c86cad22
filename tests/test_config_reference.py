"""docs/config-reference.md documents every head-end setting (the gateway's test covers its own)."""
from pathlib import Path

from askue.headend.config import Settings

DOC = (Path(__file__).resolve().parent.parent / "docs" / "config-reference.md").read_text()


def test_every_headend_setting_is_documented() -> None:
    section = DOC.split("## Head-end", 1)[1]
    missing = [name for name in Settings.model_fields if f"| `{name}` |" not in section]
    assert not missing, f"undocumented head-end settings: {missing}"
