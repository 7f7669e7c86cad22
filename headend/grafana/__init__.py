"""Grafana for dispatchers: dashboards built in Python (`dashboards.py`), written to
`grafana/` as provisioning files, pushed with `askue grafana push`, and checked by
running every panel's SQL against the real schema (`askue grafana check`)."""
