"""Origins of URLs and the one rule for where the target's auth may go. Pure.

An origin is (scheme, host, port), the scheme and host lowercased and the port filled in for the
schemes that have a default (http/ws 80, https/wss 443). The auth given for one origin (headers,
an auth query, a token subprotocol) may go to that same origin, or to the same host moved from
http:80 to https:443 (ws:80 to wss:443): the secret already went to that host, now it is encrypted
(as httpx and requests keep ``Authorization`` there). Anything else is another origin.

The rule of ``contract.spec_source.auth_follows`` (which works on ``httpx.URL``), here on plain
strings so that every domain can use it (probes may not import contract).
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["DEFAULT_PORTS", "Origin", "origin", "origin_of", "auth_may_go", "origin_text"]

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_UPGRADES = {"http": "https", "ws": "wss"}

Origin = tuple[str, str, int | None]


def origin(scheme: str, host: str, port: int | None) -> Origin:
    """The origin of a URL's parts, normalised (lowercase, default port filled in, no IPv6 brackets)."""
    scheme = scheme.lower()
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme))


def origin_of(url: str) -> Origin | None:
    """The origin of an absolute URL; None when it has none (no scheme or host, a port that is not a number)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return origin(parts.scheme, parts.hostname, port)


def auth_may_go(given: Origin, to: Origin) -> bool:
    """Whether auth given for origin ``given`` may be sent to origin ``to``: the same origin, or the same
    host upgraded from http:80 to https:443 (ws:80 to wss:443)."""
    if to == given:
        return True
    upgraded = _UPGRADES.get(given[0])
    return upgraded is not None and given[2] == 80 and to == (upgraded, given[1], 443)


def origin_text(where: Origin | None, max_chars: int = 120) -> str:
    """``scheme://host:port`` for evidence and messages (IPv6 hosts in brackets), capped at ``max_chars``."""
    if where is None:
        return "(none)"
    scheme, host, port = where
    text = f"{scheme}://{f'[{host}]' if ':' in host else host}{'' if port is None else f':{port}'}"
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."
