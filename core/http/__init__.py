"""Sans-IO Streamable HTTP: HTTP request values in, decisions out. No sockets, no clock."""

from .messages import HttpRequest, HttpResponse, error_response, json_response
from .security import LOOPBACK_HOSTS, LOOPBACK_ORIGINS, OriginPolicy

__all__ = [
    "LOOPBACK_HOSTS",
    "LOOPBACK_ORIGINS",
    "HttpRequest",
    "HttpResponse",
    "OriginPolicy",
    "error_response",
    "json_response",
]
