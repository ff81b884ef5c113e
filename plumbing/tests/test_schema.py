import pytest
from openapi_spec_validator import validate

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_schema_is_valid_openapi_3(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_swagger_ui_uses_local_assets_only(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    # Not a bare "cdn": the page embeds a random CSRF token, which can contain those letters.
    lowered = html.lower()
    assert "https://" not in html and "http://" not in html
    assert not any(host in lowered for host in ("cdn.", "jsdelivr", "unpkg", "cdnjs"))
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_seed_docs_path_redirects_to_the_api_docs(client):
    response = client.get("/docs/")
    assert response.status_code == 301 and response["Location"] == "/api/docs/"


@pytest.fixture
def schema(client):
    return client.get("/api/schema/?format=json").json()


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_error_answer_is_documented_in_the_error_shape(schema):
    """plumbing.schema.AutoSchema: paginated lists and paths with ids can answer 404,
    filters and bodies 400, protected views 403, writes 413/429, everything 503; each in the
    shared Error shape (a page past the end used to be an undocumented 404)."""
    error = {"$ref": "#/components/schemas/Error"}
    for key, operation in _operations(schema):
        responses = operation["responses"]
        for code, response in responses.items():
            if int(code) >= 400:
                assert response["content"]["application/json"]["schema"] == error, (key, code)
        parameters = operation.get("parameters", [])
        where = {p["in"] for p in parameters}
        assert "503" in responses, key
        if "path" in where or {p["name"] for p in parameters} >= {"page", "page_size"}:
            assert "404" in responses, key
        if key.startswith(("POST", "PUT", "PATCH")):
            assert {"400", "413", "429"} <= set(responses), key
        if operation.get("security") and operation["security"] != [{}]:
            assert "403" in responses, key
        if operation.get("security") == [{"machineToken": []}]:
            assert "401" in responses, key
    lists = dict(_operations(schema))
    assert "404" in lists["GET /tm_api/machines/"]["responses"]
    assert {"400", "404"} <= set(
        lists["GET /api/tracking/projects/{project_id}/requests/"]["responses"])
    # DRF's parsers answer 415 for another media type; the batch ingest reads its body itself.
    assert "415" in lists["POST /tm_api/dry_run/"]["responses"]
    assert "415" not in lists["POST /api/tracking/ingest/"]["responses"]
    # Codes a view documents itself are not touched: the machine detail has no 400.
    assert "400" not in lists["GET /tm_api/test/{id}"]["responses"]


def test_batch_ingest_documents_its_body_and_headers(schema):
    """The view has no parsers (it reads gzip'd or plain JSON itself), so drf-spectacular
    documented no body: schemathesis had nothing to break."""
    operation = dict(_operations(schema))["POST /api/tracking/ingest/"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"}
    batch = schema["components"]["schemas"]["BatchRequest"]
    assert "events" in batch["required"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert headers["Content-Encoding"]["schema"]["enum"] == ["gzip", "identity"]
    assert not headers["Idempotency-Key"].get("required", False)
    assert operation["security"] == [{"projectToken": []}]
    assert schema["components"]["securitySchemes"]["projectToken"] == {
        "type": "http", "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["projectToken"]["description"]}


@pytest.mark.parametrize("key", [
    "POST /api/tracking/ingest/", "POST /tm_api/dry_run/", "POST /tm_api/test_start/",
    "POST /tm_api/test_stop/",
])
def test_idempotency_key_is_an_optional_header_of_64_printable_ascii(schema, key):
    import re

    (parameter,) = [p for p in dict(_operations(schema))[key]["parameters"]
                    if p["name"] == "Idempotency-Key"]
    assert parameter["in"] == "header" and not parameter.get("required", False)
    pattern = re.compile(parameter["schema"]["pattern"])
    assert pattern.match("0b7e2a5c-3f1d-4c2e-9a57-6f0d2b1c8e44")
    assert pattern.match("~" * 64) and not pattern.match("~" * 65)
    assert not pattern.match("") and not pattern.match("caf\u00e9") and not pattern.match("a\tb")
    successes = {code: answer for code, answer in dict(_operations(schema))[key]["responses"].items()
                 if code.startswith("2")}
    assert successes and all(answer["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
                             for answer in successes.values())
