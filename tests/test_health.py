from __future__ import annotations

import httpx

from stability_lib import Status
from stability_lib.probes.config import HealthConfig, HealthEndpoint, TargetConfig
from stability_lib.probes.health import health_claims, run_health


def test_endpoints_on_one_path_are_judged_per_method() -> None:
    # An injected transport: GET /health answers 200, HEAD /health answers 503.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.method == "GET" else 503, json={"status": "ok"})

    cfg = HealthConfig(
        samples=3, endpoints=[HealthEndpoint(path="/health"), HealthEndpoint(path="/health", method="HEAD")]
    )
    data = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=httpx.MockTransport(handler))
    claims = {c.id: c for c in health_claims(cfg, data)}
    assert claims["health.http.health"].status is Status.PASS
    assert claims["health.http.HEAD.health"].status is Status.FAIL
    assert claims["health.http.HEAD.health"].statistic.startswith("0 of 3")


def test_missing_json_keys_fail_the_endpoint() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "ok"}))
    cfg = HealthConfig(samples=2, endpoints=[HealthEndpoint(path="/health", json_keys=["status", "database"])])
    data = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=transport)
    (claim,) = health_claims(cfg, data)
    assert claim.status is Status.FAIL and "missing database" in claim.statistic
