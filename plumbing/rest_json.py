"""JSON in and out of DRF views (REST_FRAMEWORK's default parser and renderer): hostile or
merely deep input is a 400, and deep output is served, never a RecursionError 500."""

from rest_framework import parsers, renderers
from rest_framework.exceptions import ParseError

from plumbing import jsonio


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with deep nesting answered 400 like malformed JSON (DRF already
    answers 400 for the ValueError of an integer over 4,300 digits)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer; what is nested too deep for it (a span tree 500 spans deep) is
    encoded by jsonio.dumps_deep instead, which has no recursion limit."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except RecursionError:
            encoder = self.encoder_class()
            return jsonio.dumps_deep(data, default=encoder.default,
                                     ensure_ascii=self.ensure_ascii,
                                     allow_nan=not self.strict).encode()
