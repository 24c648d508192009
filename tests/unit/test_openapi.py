import json

from devstack.openapi import OPENAPI_PATH, generate


def test_openapi_json_is_current() -> None:
    assert OPENAPI_PATH.read_text() == generate(), "openapi.json is stale: run `make openapi`"


def test_openapi_documents_the_contract_routes() -> None:
    paths = json.loads(OPENAPI_PATH.read_text())["paths"]
    assert set(paths) == {"/callbacks/kie", "/copies", "/tasks/{taskId}"}
    assert set(paths["/callbacks/kie"]) == {"post"}
    assert set(paths["/copies"]) == {"post"}
    assert set(paths["/tasks/{taskId}"]) == {"get"}
    assert "security" not in paths["/callbacks/kie"]["post"]
    assert paths["/copies"]["post"]["security"] == [{"sigv4": []}]
    assert {"200", "401", "400"} <= set(paths["/callbacks/kie"]["post"]["responses"])
