"""Origins and host names as the web front compares them: written one way, whatever the spelling."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from twisted.web.server import Request

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9.])?")


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port; ValueError if it is not an origin."""
    parts = urlsplit(origin.strip().lower())
    extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or extra:
        raise ValueError(f"{origin!r} is not an origin like https://chat.example.org:8443")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    if port is None or str(port) == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def normalize_host(name: str) -> str:
    """A host name in lower case, without a final dot; ValueError if it is not one."""
    if _NAME.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a host name like chat.example.org")
    return name.lower().removesuffix(".")


def own_origin(request: Request) -> str | None:
    """The origin the page was served from: the request's scheme and ``Host``; None if it has no usable Host."""
    host = request.getHeader("host")
    if not host:
        return None
    try:
        return normalize_origin(f"{'https' if request.isSecure() else 'http'}://{host}")
    except ValueError:
        return None
