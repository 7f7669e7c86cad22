"""Upload the datasource, the folder and the dashboards to a running Grafana with
grafana-client (idempotent: existing ones are updated)."""
from __future__ import annotations

from dataclasses import dataclass, field

from askue.headend.grafana.dashboards import DS_UID, FOLDER_TITLE, FOLDER_UID, build_all


class PushError(RuntimeError):
    """Grafana refused or could not be reached; the message says which step."""


@dataclass
class PushResult:
    datasource: str = ""
    folder: str = ""
    dashboards: list[str] = field(default_factory=list)


def push(url: str, token: str, datasource: dict | None, *, timeout: float = 15.0) -> PushResult:
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    res = PushResult()
    step = "connect"
    try:
        step = "health"
        api.health.check()
        if datasource is not None:
            step = "datasource"
            try:
                api.datasource.get_datasource_by_uid(DS_UID)
                api.datasource.update_datasource_by_uid(DS_UID, datasource)
                res.datasource = "updated"
            except GrafanaClientError as e:
                if getattr(e, "status_code", None) != 404:
                    raise
                api.datasource.create_datasource(datasource)
                res.datasource = "created"
        step = "folder"
        try:
            api.folder.get_folder(FOLDER_UID)
            res.folder = "exists"
        except GrafanaClientError as e:
            if getattr(e, "status_code", None) != 404:
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            res.folder = "created"
        for d in build_all():
            step = f"dashboard {d['uid']}"
            api.dashboard.update_dashboard({"dashboard": {**d, "id": None}, "folderUid": FOLDER_UID,
                                            "overwrite": True, "message": "askue grafana push"})
            res.dashboards.append(d["uid"])
    except GrafanaException as e:
        raise PushError(f"Grafana at {url} refused the {step} step: {e}") from None
    except Exception as e:  # connection errors come from the HTTP library underneath
        raise PushError(f"Grafana at {url} failed at the {step} step: {e.__class__.__name__}: {e}; "
                        "check --url and that the token is a service-account token with Editor/Admin role") from None
    return res
