"""What the OpenAPI schema (drf-spectacular) says beyond what it finds in the views by itself.

- The `Content-Encoding` header parameter of the batch ingest (`Idempotency-Key` and the
  `Idempotent-Replayed` header of replayed answers are idempotency/schema.py's).
- AutoSchema (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]): the error answers every operation can
  give, in the shared error shape, so that the schema lists every status the API answers
  (the REST fuzzer, trace_project/tests/test_fuzz_api.py, checks that it does).
"""

from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.permissions import AllowAny

CONTENT_ENCODING = OpenApiParameter(
    "Content-Encoding", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    enum=["gzip", "identity"],
    description="`gzip` when the JSON body is gzip'd; absent or `identity` for plain JSON. "
                "Any other value is a 400.",
)


# --- error answers every operation documents ----------------------------------------------------

class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema plus the error answers DRF and our views give without a view
    saying so in its @extend_schema, all in the shared error shape (plumbing.errors):

    - 400 when the operation takes a body or query parameters other than the page's (a value
      that does not validate);
    - 404 for a paginated list (a page past the end, `?page=x`) and for a path with parameters
      (no such row);
    - 403 when the view is not open to anyone (DRF answers 403 when no authenticator sends a
      WWW-Authenticate challenge, as with sessions), and 401 too when one does (tokens) or when
      an authenticator refuses bad credentials with 401 (personal API tokens);
    - 415 when DRF parses the body (another Content-Type than the documented ones);
    - 413 (body too large) and 429 (rate limited) for every POST, PUT and PATCH;
    - 503 everywhere: the database or channel layer is down (plumbing.errors).

    Codes a view documents itself are left as they are; only missing ones are added.
    """

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code, description in self._error_answers(operation).items():
            if str(code) not in responses:
                responses[str(code)] = {
                    "content": {"application/json": {"schema": self._error_ref()}},
                    "description": description,
                }
        # Numeric order, so the rendered documentation lists them as readers expect.
        operation["responses"] = dict(sorted(responses.items(), key=lambda item: item[0]))
        return operation

    def _error_ref(self):
        from plumbing.errors import ErrorSerializer

        return self.resolve_serializer(ErrorSerializer, "response").ref

    def _error_answers(self, operation) -> dict:
        parameters = operation.get("parameters", [])
        query = {p["name"] for p in parameters if p.get("in") == "query"}
        paginated = self._is_list_view() and self._get_paginator() is not None
        page_parameters = {"page", "page_size"} if paginated else set()
        answers = {}
        if "requestBody" in operation or query - page_parameters:
            answers[400] = "Invalid input: `errors` names each field."
        if self._challenges():
            answers[401] = "No credentials, or credentials that are not valid."
        if not self._open_to_anyone():
            answers[403] = "Not allowed (not logged in, or not allowed to do this)."
        if paginated or any(p.get("in") == "path" for p in parameters):
            answers[404] = ("No such page (past the end) or row." if paginated
                            else "No such row.")
        if "requestBody" in operation and self.view.get_parsers():
            # DRF's parsers refuse other media types (a view without parsers reads its body).
            answers[415] = "Unsupported Content-Type: send the media type documented here."
        if self.method in WRITE_METHODS:
            answers[413] = "Request body too large."
            answers[429] = "Too many requests; retry after the Retry-After header's seconds."
        answers[503] = "The database (or channel layer) is unavailable; `detail` says which. " \
                       "Retry later."
        return answers

    def _open_to_anyone(self) -> bool:
        return all(isinstance(permission, AllowAny)
                   for permission in self.view.get_permissions())

    def _challenges(self) -> bool:
        """Whether DRF answers 401 here: its first authenticator sends a challenge, or one of
        them refuses bad credentials with a 401 of its own (`refuses_with_401`: a personal API
        token, which leaves a request without credentials its 403). Open views too: a bad
        token is refused before the view is reached."""
        authenticators = self.view.get_authenticators()
        if any(getattr(authenticator, "refuses_with_401", False)
               for authenticator in authenticators):
            return True
        if self._open_to_anyone():
            return False
        request = getattr(self.view, "request", None)
        return bool(authenticators and authenticators[0].authenticate_header(request))


WRITE_METHODS = ("POST", "PUT", "PATCH")
