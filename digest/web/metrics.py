"""`GET /metrics`: `digest.metrics` in Prometheus' text format, for a scraper only.

Who may read it: a client whose address is in `[metrics] allow` (addresses or networks,
default loopback), or one that sends `Authorization: Bearer <DIGEST_METRICS_TOKEN>`.
Anyone else gets 401 (a token is set: send it) or 403 (none is set: this address is not
allowed). The address is the one uvicorn reports, which is the proxy's own unless the
proxy is trusted in `[web] forwarded_allow_ips`: behind nginx on the same machine every
request would come from 127.0.0.1, so nginx should not pass /metrics on (operations.md,
"Monitoring").
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from digest.metrics import Metrics
from digest.web.deps import AppDep

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
TOKEN_VARIABLE = "DIGEST_METRICS_TOKEN"


@router.get("/metrics")
def metrics(app: AppDep, request: Request) -> Response:
    token = app.settings.secret(TOKEN_VARIABLE)
    refusal = _refusal(request, token, app.settings["metrics.allow"])
    if refusal is not None:
        return refusal
    registry: Metrics = request.app.state.metrics
    # The text format every Prometheus reads (its names are plain, so the output is
    # the same); prometheus-client's default now announces version 1.0.0.
    return Response(generate_latest(registry.registry),
                    headers={"Cache-Control": "no-store",
                             "Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def _refusal(request: Request, token: str, allow: str) -> Response | None:
    given = request.headers.get("authorization")
    if given is not None and token:
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              token.encode()):
            return None
        return _refuse(401, "wrong token for /metrics", bearer=True)
    host = request.client.host if request.client else ""
    if _allowed(host, allow):
        return None
    if token:
        return _refuse(401, f"/metrics needs the {TOKEN_VARIABLE} bearer token from {host}",
                       bearer=True)
    return _refuse(403, f"/metrics is not open to {host}; add it to [metrics] allow, or "
                        f"set {TOKEN_VARIABLE} and send it as a bearer token")


def _refuse(status: int, text: str, *, bearer: bool = False) -> Response:
    headers = {"Cache-Control": "no-store"}
    if bearer:
        headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return PlainTextResponse(text + "\n", status_code=status, headers=headers)


def _allowed(host: str, allow: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # not an address (a test client's name): never allowed by address
    for item in filter(None, (part.strip() for part in allow.split(","))):
        try:
            if address in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            log.warning("[metrics] allow: %r is no address or network; ignored", item)
    return False
