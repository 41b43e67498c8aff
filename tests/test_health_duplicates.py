"""Each configured health endpoint is its own check, also when another one has its method and path.

Two endpoints on one method and path (the right token expecting 200 and a wrong one expecting 403,
or the same path with different checks) got one claim id, ``health.http.<path>``, and each claim
counted the samples of both ("4 of 4 requests" with samples: 2): the right-token check failed on the
wrong-token answers and the other way round. ``/health`` and ``/health/`` got one id too. Now samples
carry their endpoint's index, each claim counts its own, and ids are distinct: an endpoint whose id
an earlier one has gets ``.2``, ``.3``, ...; an id only one endpoint has is unchanged (users name ids
in ``checks.informative`` and history follows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from stability_lib.core.models import Claim, Status
from stability_lib.probes.config import HealthConfig, HealthEndpoint, TargetConfig
from stability_lib.probes.health import health_claim_ids, health_claims, run_health

RIGHT = "token right-0123456789"
DEMO_PARAMS = Path(__file__).resolve().parents[1] / "params" / "demo.yaml"


def _service(request: httpx.Request) -> httpx.Response:
    """``/api/status`` wants the right token (else 403); ``/health`` 200 with a body; ``/health/`` redirects."""
    path = request.url.path
    if path == "/api/status":
        if request.headers.get("Authorization") != RIGHT:
            return httpx.Response(403, json={"error": "forbidden"})
        return httpx.Response(200, json={"status": "ok", "version": "2.21.1"})
    if path == "/health":
        return httpx.Response(200, json={"status": "ok", "database": "up"})
    if path == "/health/":
        return httpx.Response(307, headers={"location": "/health"})
    return httpx.Response(200, json={"path": path})


def _run(endpoints: list[HealthEndpoint], samples: int = 2) -> tuple[list[Claim], dict[str, Any]]:
    cfg = HealthConfig(samples=samples, timeout_s=5.0, endpoints=endpoints)
    data = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=httpx.MockTransport(_service))
    return health_claims(cfg, data), data


def test_the_right_and_a_wrong_token_on_one_path_are_two_checks_counted_apart() -> None:
    claims, data = _run(
        [
            HealthEndpoint(path="/api/status", headers={"Authorization": RIGHT}, expect_status=[200]),
            HealthEndpoint(path="/api/status", headers={"Authorization": "token wrong"}, expect_status=[403]),
        ]
    )
    right, wrong = claims
    assert right.status is Status.PASS and right.statistic.startswith("2 of 2 requests as expected"), right.statistic
    assert wrong.status is Status.PASS and wrong.statistic.startswith("2 of 2 requests as expected"), wrong.statistic
    assert right.figure is not None and right.figure.n == 2 and wrong.figure is not None and wrong.figure.n == 2
    # The statements and evidence records say which endpoint each one is.
    assert right.statement == "GET /api/status answers 200 (endpoints[0])"
    assert wrong.statement == "GET /api/status answers 403 (endpoints[1])"
    assert right.evidence[0].records == ("samples[path=/api/status, endpoint_index=0]",)
    assert wrong.evidence[0].records == ("samples[path=/api/status, endpoint_index=1]",)
    assert [s["endpoint_index"] for s in data["samples"]] == [0, 0, 1, 1]
    assert [c.id for c in claims] == ["health.http.api.status", "health.http.api.status.2"]


def test_one_path_with_different_checks_fails_only_the_check_that_does_not_hold() -> None:
    claims, _ = _run(
        [
            HealthEndpoint.model_validate(
                {"path": "/api/status", "headers": {"Authorization": RIGHT}, "check": {"status": "ok"}}
            ),
            HealthEndpoint.model_validate(
                {"path": "/api/status", "headers": {"Authorization": RIGHT}, "check": {"version": "3.0.0"}}
            ),
            HealthEndpoint(path="/api/status", headers={"Authorization": RIGHT}, json_keys=["status", "version"]),
        ],
        samples=3,
    )
    ok, version, keys = claims
    assert ok.status is Status.PASS and ok.statistic.startswith("3 of 3 requests as expected"), ok.statistic
    assert version.status is Status.FAIL and version.statistic.startswith("0 of 3 requests as expected")
    assert "check version: expected 3.0.0, got 2.21.1" in version.statistic
    assert keys.status is Status.PASS and keys.statistic.startswith("3 of 3 requests as expected"), keys.statistic
    assert [c.id for c in claims] == ["health.http.api.status", "health.http.api.status.2", "health.http.api.status.3"]


def test_a_path_with_and_without_its_trailing_slash_are_two_checks_with_two_ids() -> None:
    # Two resources (a framework often redirects one to the other): both checked, each under its own id.
    claims, _ = _run([HealthEndpoint(path="/health"), HealthEndpoint(path="/health/", expect_status=[307])])
    assert all(c.status is Status.PASS for c in claims), [c.statistic for c in claims]
    assert all(c.figure is not None and c.figure.n == 2 for c in claims)
    assert claims[1].statement == "GET /health/ answers 307"  # the paths differ: no index needed
    assert [c.id for c in claims] == ["health.http.health", "health.http.health.2"]


def test_a_suffix_never_takes_the_id_of_an_endpoint_listed_once() -> None:
    endpoints = [
        HealthEndpoint(path="/api/status", headers={"Authorization": RIGHT}),
        HealthEndpoint(path="/api/status", expect_status=[403]),
        HealthEndpoint(path="/api/status/2"),  # its own id is health.http.api.status.2: it keeps it
        HealthEndpoint(path="/"),
        HealthEndpoint(path="/", method="HEAD"),
        HealthEndpoint(path="/"),
        HealthEndpoint(path="/x", method="HEAD"),
        HealthEndpoint(path="/HEAD/x"),  # came to the same id as HEAD /x
    ]
    ids = health_claim_ids(endpoints)
    assert ids == [
        "health.http.api.status",
        "health.http.api.status.3",
        "health.http.api.status.2",
        "health.http",
        "health.http.HEAD",
        "health.http.2",
        "health.http.HEAD.x",
        "health.http.HEAD.x.2",
    ]
    claims, _ = _run(endpoints, samples=1)
    assert [c.id for c in claims] == ids
    assert all(c.status is Status.PASS and c.figure is not None and c.figure.n == 1 for c in claims), [
        (c.id, c.statistic) for c in claims
    ]


def test_the_demo_ids_are_unchanged_and_a_repeated_endpoint_added_to_them_gets_its_own() -> None:
    raw = yaml.safe_load(DEMO_PARAMS.read_text())["sections"]["health"]
    demo = HealthConfig.model_validate(raw)
    demo_ids = ["health.http.health", "health.http.api.openapi.json", "health.http.api.docs"]
    assert health_claim_ids(demo.endpoints) == demo_ids
    assert health_claim_ids(demo.endpoints, "health_b") == [i.replace("health.", "health_b.", 1) for i in demo_ids]
    # The demo's endpoints, then /health again asking for a key the service lacks: the first /health still PASSes.
    endpoints = [*demo.endpoints, HealthEndpoint(path="/health", json_keys=["cache"])]
    claims, _ = _run(endpoints)
    first, second = claims[0], claims[-1]
    assert first.status is Status.PASS, first.statistic
    assert first.statistic.startswith("2 of 2 requests as expected")
    assert second.status is Status.FAIL
    assert second.statistic.startswith("0 of 2 requests as expected; first problem: HTTP 200, missing cache")
    assert [c.id for c in claims] == [*demo_ids, "health.http.health.2"]


def test_evidence_without_endpoint_indexes_is_attributed_only_where_it_is_unambiguous() -> None:
    # Samples recorded before they carried their endpoint: one endpoint on (GET, /health) takes them; two
    # endpoints on (GET, /api/status) cannot tell whose they are, so neither claims them.
    cfg = HealthConfig(
        samples=1,
        endpoints=[
            HealthEndpoint(path="/health"),
            HealthEndpoint(path="/api/status", headers={"Authorization": RIGHT}),
            HealthEndpoint(path="/api/status", expect_status=[403]),
        ],
    )
    data = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=httpx.MockTransport(_service))
    old = {**data, "samples": [{k: v for k, v in s.items() if k != "endpoint_index"} for s in data["samples"]]}
    statuses = [(c.id, c.status) for c in health_claims(cfg, old)]
    assert statuses == [
        ("health.http.health", Status.PASS),
        ("health.http.api.status", Status.INCONCLUSIVE),
        ("health.http.api.status.2", Status.INCONCLUSIVE),
    ]


def test_the_health_page_and_its_warnings_tell_repeated_endpoints_apart() -> None:
    # Grouped by path, the page showed one row "4 requests, status codes 200, 403" for both checks of a path,
    # and the latency records of both had the same ids.
    from stability_lib.core.models import SectionResult
    from stability_lib.report.evidence_warnings import _durations
    from stability_lib.report.views import section_parts

    def sample(index: int, endpoint: int, status: int) -> dict[str, Any]:
        return {
            "path": "/api/status",
            "index": index,
            "status": status,
            "latency_ms": 2.0,
            "error": None,
            "method": "GET",
            "endpoint_index": endpoint,
        }

    samples = [sample(0, 0, 200), sample(1, 0, 200), sample(0, 1, 403), sample(1, 1, 403)]
    result = SectionResult("health", Status.PASS, (), {"samples": samples})
    html = "".join(p for p in section_parts(result) if isinstance(p, str)).replace("<wbr>", "")
    assert "GET /api/status (endpoints[0])" in html and "GET /api/status (endpoints[1])" in html
    records = [record for _kind, record, _ms in _durations(result)]
    assert len(set(records)) == 4
