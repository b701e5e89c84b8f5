"""Property-based run of the OpenAPI document (schemathesis): generated requests, valid and
not, against the real server and database, must never get a 5xx nor a response (status,
content type, headers, body) that the document does not describe.

Each operation is one pytest test driving schemathesis' Hypothesis strategy (its own pytest
plugin does not run under pytest 9), with a bounded number of examples to stay fast.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs.api.app import create_app
from tests.api.conftest import add_job, auth

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
LABELS = [r.ok().label for r in
          schemathesis.openapi.from_dict(create_app().openapi()).get_all_operations()]


@pytest.fixture(scope="module")
def live_schema(api_server):
    """The document as the running server serves it."""
    return schemathesis.openapi.from_url(api_server.url + "/v1/openapi.json")


@pytest.mark.parametrize("label", LABELS)
def test_operation_conforms_to_the_openapi_document(live_schema, world, label):
    db, aid = world["db"], world["acme"].id
    real = {"GET": add_job(db, aid, state="succeeded", verdict="healthy",
                           counters={"items": 3, "upserted": 3},
                           report={"verdict": "healthy"}, started_at="2026-01-01T00:00:00Z",
                           finished_at="2026-01-01T00:01:00Z"),
            "POST": add_job(db, aid, state="dead", error="gone", errors=[{"error": "gone"}])}
    headers = auth(world["tokens"]["operator"])
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is served"

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE)
           | operation.as_strategy(GenerationMode.NEGATIVE))
    def check(case):
        if case.query and "wait" in case.query:
            case.query["wait"] = 0  # a generated `wait` must not hold the run for 30 s
        case.call_and_validate(headers=headers, checks=CHECKS)
        # the same request aimed at resources that exist, so successful bodies are checked too
        params = dict(case.path_parameters or {})
        if params:
            if "slug" in params:
                params["slug"] = "acme"
            if "job_id" in params:
                params["job_id"] = real[case.method.upper()]
            case.path_parameters = params
            case.call_and_validate(headers=headers, checks=CHECKS)

    check()
