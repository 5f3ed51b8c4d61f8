"""Schemathesis against the OpenAPI description: no request the spec allows makes a 500.

Every operation is called with generated parameters and bodies (as the admin,
who may call every route) on the hand-drawn planning layout in a GeoPackage.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_planning import planned


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings
    from gis_grid.store.gpkg import GeoPackageStore

    path = tmp_path_factory.mktemp("fuzz") / "plan.gpkg"
    store = planned(GeoPackageStore(path))
    token = store.add_user("fuzz-admin", "fuzz", "admin")
    store.close()
    app = create_app(Settings(database_url=str(path)))
    with TestClient(app):  # runs the lifespan: the store opens
        yield app, token


@pytest.fixture(scope="module")
def operations(fuzzed_app):
    app, _ = fuzzed_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_is_fuzzed(operations):
    assert len(operations) >= 20


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_server_errors(operations, fuzzed_app, data):
    _, token = fuzzed_app
    operation = data.draw(st.sampled_from(operations))
    case = data.draw(operation.as_strategy())
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
