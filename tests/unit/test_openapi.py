import json

import pytest
from devstack.openapi import OPENAPI_PATH, generate


def test_openapi_json_is_current() -> None:
    assert OPENAPI_PATH.read_text() == generate(), "openapi.json is stale: run `make openapi`"


def test_openapi_documents_the_contract_routes() -> None:
    paths = json.loads(OPENAPI_PATH.read_text())["paths"]
    assert set(paths) == {"/callbacks/kie", "/copies", "/tasks/{taskId}"}
    assert set(paths["/callbacks/kie"]) == {"post"}
    assert set(paths["/copies"]) == {"post"}
    assert set(paths["/tasks/{taskId}"]) == {"get"}


def test_openapi_states_who_may_call_each_route() -> None:
    document = json.loads(OPENAPI_PATH.read_text())
    paths, schemes = document["paths"], document["components"]["securitySchemes"]
    assert paths["/callbacks/kie"]["post"]["security"] == [
        {"kieWebhookTimestamp": [], "kieWebhookSignature": []},
        {"callbackToken": []},
    ]
    assert paths["/copies"]["post"]["security"] == [{"sigv4": []}]
    assert paths["/tasks/{taskId}"]["get"]["security"] == [{"sigv4": []}]
    assert {name: (s["type"], s["in"], s["name"]) for name, s in schemes.items()} == {
        "sigv4": ("apiKey", "header", "Authorization"),
        "kieWebhookTimestamp": ("apiKey", "header", "X-Webhook-Timestamp"),
        "kieWebhookSignature": ("apiKey", "header", "X-Webhook-Signature"),
        "callbackToken": ("apiKey", "query", "token"),
    }
    # The token is declared by its security scheme, not again as a plain parameter.
    assert [p["name"] for p in paths["/callbacks/kie"]["post"]["parameters"]] == ["family"]


def test_openapi_lists_the_statuses_each_route_answers() -> None:
    paths = json.loads(OPENAPI_PATH.read_text())["paths"]
    assert {
        f"{m.upper()} {p}": sorted(o["responses"]) for p, ops in paths.items() for m, o in ops.items()
    } == {
        "POST /callbacks/kie": ["200", "400", "401", "413", "503"],
        "POST /copies": ["200", "202", "400", "403", "404", "413", "502", "503"],
        "GET /tasks/{taskId}": ["200", "400", "403", "404", "503"],
    }
    errors = [
        r["content"]["application/json"]["schema"]
        for ops in paths.values()
        for o in ops.values()
        for code, r in o["responses"].items()
        if code >= "400"
    ]
    assert errors
    assert all(e == {"$ref": "#/components/schemas/ErrorDocument"} for e in errors)


def test_openapi_has_no_validation_error_schemas_the_api_never_answers() -> None:
    text = OPENAPI_PATH.read_text()
    assert "HTTPValidationError" not in text
    assert '"422"' not in text


def test_openapi_callback_body_names_its_task_as_task_id_of_reads_it() -> None:
    import jsonschema
    from devstack.callbacks import EVENTS_DIR, callback_body, load_event

    from kie2s3.errors import BadRequestError
    from kie2s3.families import task_id_of

    body = json.loads(OPENAPI_PATH.read_text())["paths"]["/callbacks/kie"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    checked = 0
    for path in sorted(EVENTS_DIR.glob("callback-*.json")):
        sample = callback_body(load_event(str(path)), path.name)
        try:
            task_id_of(sample)
        except BadRequestError:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(sample, schema)
            continue
        jsonschema.validate(sample, schema)
        checked += 1
    assert checked >= 20
