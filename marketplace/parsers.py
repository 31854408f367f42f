"""DRF parsers shared by the raw-body APIs (invocations, the Data API)."""
from rest_framework.parsers import BaseParser


class RawBodyParser(BaseParser):
    """Accept any media type: the body is read raw (or streamed) by the view's service."""

    media_type = "*/*"
