"""Topic names. Everything lives under `<root>/v1/<gateway_id>/…`."""
from __future__ import annotations

import re
from dataclasses import dataclass

GATEWAY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KINDS = ("data", "state", "health", "cmd", "cmd/result")


@dataclass(frozen=True)
class Topics:
    root: str = "askue"

    def _base(self, gateway_id: str) -> str:
        if not GATEWAY_ID_RE.match(gateway_id):
            raise ValueError(
                f"gateway id {gateway_id!r} is not allowed in a topic: use 1-64 characters "
                "of letters, digits, '_', '.', '-' starting with a letter or digit"
            )
        return f"{self.root}/v1/{gateway_id}"

    def data(self, gw: str) -> str:
        return self._base(gw) + "/data"

    def state(self, gw: str) -> str:
        return self._base(gw) + "/state"

    def health(self, gw: str) -> str:
        return self._base(gw) + "/health"

    def cmd(self, gw: str) -> str:
        return self._base(gw) + "/cmd"

    def cmd_result(self, gw: str) -> str:
        return self._base(gw) + "/cmd/result"

    def all_of(self, kind: str) -> str:
        """Wildcard subscription for one kind over all gateways (head-end side)."""
        if kind not in KINDS:
            raise ValueError(f"unknown topic kind {kind!r}; one of {KINDS}")
        return f"{self.root}/v1/+/{kind}"

    def shared(self, group: str, kind: str) -> str:
        """MQTT 5 shared subscription: workers in one group split the gateways."""
        return f"$share/{group}/{self.all_of(kind)}"

    def parse(self, topic: str) -> tuple[str, str]:
        """Return (gateway_id, kind) of a topic under this root, or raise ValueError."""
        prefix = self.root + "/v1/"
        if not topic.startswith(prefix):
            raise ValueError(f"topic {topic!r} is not under {prefix!r}")
        gw, _, kind = topic[len(prefix):].partition("/")
        if not GATEWAY_ID_RE.match(gw) or kind not in KINDS:
            raise ValueError(f"topic {topic!r} is not <root>/v1/<gateway>/<{'|'.join(KINDS)}>")
        return gw, kind
