"""Commands from the head-end to gateways: what may be sent (`catalogue`), giving and
following them (`service`), the dispatcher that publishes them and records the answers
(`dispatcher`, `queue`), how their outcome reads (`describe`), the HTTP API (`api`)."""
