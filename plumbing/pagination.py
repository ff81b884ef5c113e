from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response


class PageNumberEnvelope(PageNumberPagination):
    """The test-machine API's envelope, used by every list in the API: ?page=N&page_size=M (at most
    100)."""

    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_paginated_response(self, data):
        page = self.page
        return Response(
            {
                "count": page.paginator.count,
                "page_number": page.number,
                "total_pages": page.paginator.num_pages,
                "has_previous": page.has_previous(),
                "previous_page_number": page.previous_page_number() if page.has_previous() else None,
                "has_next": page.has_next(),
                "next_page_number": page.next_page_number() if page.has_next() else None,
                "page_size": self.get_page_size(self.request),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        integer = {"type": "integer"}
        nullable_integer = {"type": "integer", "nullable": True}
        return {
            "type": "object",
            "required": ["count", "page_number", "total_pages", "results"],
            "properties": {
                "count": integer,
                "page_number": integer,
                "total_pages": integer,
                "has_previous": {"type": "boolean"},
                "previous_page_number": nullable_integer,
                "has_next": {"type": "boolean"},
                "next_page_number": nullable_integer,
                "page_size": integer,
                "results": schema,
            },
        }
