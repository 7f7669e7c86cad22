"""The MQTT contract's JSON Schema file and Markdown doc stay in step with the code."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec

from askue.contract import payloads
from askue.contract.topics import KINDS

REPO = Path(__file__).resolve().parents[2]


def test_schema_file_is_current():
    on_disk = json.loads((REPO / "contract" / "schema.json").read_text())
    assert on_disk == json.loads(json.dumps(payloads.json_schema())), (
        "contract/schema.json is stale: regenerate it with\n"
        "  .venv/bin/python -c \"import json; from askue.contract.payloads import json_schema; "
        "open('contract/schema.json','w').write(json.dumps(json_schema(), indent=2, ensure_ascii=False, "
        "sort_keys=True)+'\\n')\"")


def test_doc_names_every_topic_payload_field_and_command():
    doc = (REPO / "docs" / "mqtt-contract.md").read_text()
    for kind in KINDS:
        assert f"/{kind}`" in doc, f"topic kind {kind} is not documented"
    for t in (payloads.DataMessage, payloads.Value, payloads.MeterStatus, payloads.State, payloads.Health,
              payloads.Command, payloads.CommandResult):
        assert f"### {t.__name__}" in doc, f"{t.__name__} has no section"
        section = doc.split(f"### {t.__name__}", 1)[1].split("\n### ", 1)[0]
        for f in msgspec.structs.fields(t):
            assert f"`{f.name}`" in section, f"{t.__name__}.{f.name} is not documented"
    for name in payloads.CommandName.__args__:
        assert f"`{name}`" in doc, f"command {name} is not documented"
    assert f"v = {payloads.SCHEMA_VERSION}" in doc or f"`v`: {payloads.SCHEMA_VERSION}" in doc
