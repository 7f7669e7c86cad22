"""Upload the datasource, the folder and the dashboards to a running Grafana with
grafana-client (idempotent: existing ones are updated)."""
from __future__ import annotations

from dataclasses import dataclass, field

from askue.headend.grafana.dashboards import (
    DS_UID,
    FOLDER_TITLE,
    FOLDER_UID,
    PROM_UID,
    SYSTEM_FOLDER_TITLE,
    SYSTEM_FOLDER_UID,
    build_system,
)
from askue.headend.grafana.provisioning import folder_dashboards


class PushError(RuntimeError):
    """Grafana refused or could not be reached; the message says which step."""


@dataclass
class PushResult:
    datasource: str = ""
    folder: str = ""
    dashboards: list[str] = field(default_factory=list)
    prometheus: str = ""
    system_dashboards: list[str] = field(default_factory=list)


def push(url: str, token: str, datasource: dict | None, *, prometheus: dict | None = None,
         timeout: float = 15.0) -> PushResult:
    """The PostgreSQL datasource and the dispatchers' dashboards; with `prometheus` also the
    Prometheus datasource and the head-end health dashboard (folder «АСКУЭ: система»)."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    res = PushResult()
    step = "connect"
    try:
        step = "health"
        api.health.check()
        def upsert_datasource(uid: str, payload: dict) -> str:
            try:
                api.datasource.get_datasource_by_uid(uid)
                api.datasource.update_datasource_by_uid(uid, payload)
                return "updated"
            except GrafanaClientError as e:
                if getattr(e, "status_code", None) != 404:
                    raise
                api.datasource.create_datasource(payload)
                return "created"

        def ensure_folder(uid: str, title: str) -> str:
            try:
                api.folder.get_folder(uid)
                return "exists"
            except GrafanaClientError as e:
                if getattr(e, "status_code", None) != 404:
                    raise
                api.folder.create_folder(title, uid=uid)
                return "created"

        def upload(dashboards: list[dict], folder: str, done: list[str]) -> None:
            nonlocal step
            for d in dashboards:
                step = f"dashboard {d['uid']}"
                api.dashboard.update_dashboard({"dashboard": {**d, "id": None}, "folderUid": folder,
                                                "overwrite": True, "message": "askue grafana push"})
                done.append(d["uid"])

        if datasource is not None:
            step = "datasource"
            res.datasource = upsert_datasource(DS_UID, datasource)
        step = "folder"
        res.folder = ensure_folder(FOLDER_UID, FOLDER_TITLE)
        upload(folder_dashboards(), FOLDER_UID, res.dashboards)
        if prometheus is not None:
            step = "prometheus datasource"
            res.prometheus = upsert_datasource(PROM_UID, prometheus)
            step = "system folder"
            ensure_folder(SYSTEM_FOLDER_UID, SYSTEM_FOLDER_TITLE)
            upload(build_system(), SYSTEM_FOLDER_UID, res.system_dashboards)
    except GrafanaException as e:
        raise PushError(f"Grafana at {url} refused the {step} step: {e}") from None
    except Exception as e:  # connection errors come from the HTTP library underneath
        raise PushError(f"Grafana at {url} failed at the {step} step: {e.__class__.__name__}: {e}; "
                        "check --url and that the token is a service-account token with Editor/Admin role") from None
    return res
