"""One redactor for every value that came from a ``${NAME}`` reference.

Secrets come from the environment only; this module knows which resolved
values they are and scrubs them from whatever we keep (evidence, logs,
executed notebooks, copied test output), in every common encoding: a failing
test prints a secret through ``repr`` (backslashes doubled, quotes escaped),
evidence stores it JSON-escaped, JUnit and the report hold it XML/HTML-escaped,
URLs percent-encode it and an ``Authorization: Basic`` header base64-encodes it.

What is not secret: the parts of a target or baseline address that say what was
tested (scheme, host, port, path). A reference in the userinfo, the query or the
fragment of an address is secret like any other; ``display_url`` gives the form
of an address that writers may show.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .params import ENV_REFERENCE

__all__ = [
    "secret_values",
    "redact_text",
    "redact_bytes",
    "redact_obj",
    "redact_file",
    "redact_tree",
    "display_url",
    "REDACTED",
    "MIN_SECRET_CHARS",
]

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter values ("1", "on") would scrub ordinary text, and guard nothing
# A base64 fragment shorter than this matches random base64 (embedded images) far too often:
# 8 characters collide by chance about once in 2.8e14 positions.
MIN_BASE64_CHARS = 8
# A backslash doubles at each level of escaping (repr, then JSON, then JSON again): 8 covers three levels.
_MAX_BACKSLASH_RUN = 8
_ADDRESS_FIELDS = frozenset({"base_url", "ws_base_url"})
_ADDRESS_OWNERS = frozenset({"target", "baseline"})


# --- which values are secret -------------------------------------------------------------------


def secret_values(raw: Any, env: Mapping[str, str], where: str = "") -> frozenset[str]:
    """The resolved values of every ``${NAME}`` in raw params, except the parts of a target or
    baseline address that say what was tested (scheme, host, port, path)."""
    found: set[str] = set()
    if isinstance(raw, dict):
        for key, value in raw.items():
            found |= secret_values(value, env, f"{where}.{key}" if where else str(key))
    elif isinstance(raw, list):
        for value in raw:
            found |= secret_values(value, env, where)
    elif isinstance(raw, str):
        owner, _, field = where.partition(".")
        if owner in _ADDRESS_OWNERS and field in _ADDRESS_FIELDS:
            found |= _secrets_in_address(raw, env)
        else:
            found |= {env.get(name, "") for name in ENV_REFERENCE.findall(raw)}
    return frozenset(v for v in found if len(v) >= MIN_SECRET_CHARS)


def _secrets_in_address(template: str, env: Mapping[str, str]) -> set[str]:
    """Values of the references that land in the userinfo, query or fragment of the resolved URL,
    plus those URL parts themselves when a reference supplied them whole (``${URL}``)."""
    pieces: list[str] = []
    spans: list[tuple[str, int, int]] = []  # (value, start, end) of each reference in the resolved URL
    last = 0
    for match in ENV_REFERENCE.finditer(template):
        pieces.append(template[last : match.start()])
        start = sum(len(p) for p in pieces)
        value = env.get(match.group(1), "")
        pieces.append(value)
        spans.append((value, start, start + len(value)))
        last = match.end()
    pieces.append(template[last:])
    url = "".join(pieces)
    sensitive = _sensitive_spans(url)
    if sensitive is None:  # not parseable: nothing of it can be shown
        return {value for value, _, _ in spans}
    found: set[str] = set()
    for value, start, end in spans:
        if any(start < s_end and s_start < end for s_start, s_end in sensitive):
            found.add(value)
            # ``${URL}`` holding ``https://user:pw@host/?key=k``: pw and k are secrets on their own.
            found |= {url[s:e] for s, e in _secret_parts(url) if start <= s and e <= end}
    return found


def _sensitive_spans(url: str) -> list[tuple[int, int]] | None:
    """Offsets of the userinfo (with its ``@``) and of everything after ``?`` or ``#``; None when
    the URL does not parse. Offsets follow ``urllib.parse.urlsplit``'s own splitting rules."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    spans: list[tuple[int, int]] = []
    scheme_end = len(parts.scheme) + 1 if parts.scheme else 0
    after_scheme = url[scheme_end:]
    if after_scheme.startswith("//"):
        netloc_start = scheme_end + 2
        netloc_end = netloc_start + len(parts.netloc)
        at = url.rfind("@", netloc_start, netloc_end)
        if at >= 0:
            spans.append((netloc_start, at + 1))
        rest_start = netloc_end
    else:
        rest_start = scheme_end
    tail = [i for i in (url.find("?", rest_start), url.find("#", rest_start)) if i >= 0]
    if tail:
        spans.append((min(tail), len(url)))
    return spans


def _secret_parts(url: str) -> list[tuple[int, int]]:
    """Offsets of username, password, each query value and the fragment of a URL."""
    sensitive = _sensitive_spans(url) or []
    parts: list[tuple[int, int]] = []
    for start, end in sensitive:
        text = url[start:end]
        if text.endswith("@"):  # userinfo
            user, colon, _ = text[:-1].partition(":")
            parts.append((start, start + len(user)))
            if colon:
                parts.append((start + len(user) + 1, end - 1))
            continue
        offset = start
        for chunk in re.split(r"([?&;#])", text):
            key, eq, _ = chunk.partition("=")
            value_start = offset + (len(key) + 1 if eq else 0)
            if chunk not in ("?", "&", ";", "#"):
                parts.append((value_start, offset + len(chunk)))
            offset += len(chunk)
    return [(s, e) for s, e in parts if e > s]


def display_url(url: str) -> str:
    """The form of an address that may be shown and written: scheme, host, port and path as they
    are; the userinfo, every query value and the fragment replaced by ``***``."""
    sensitive = _sensitive_spans(url)
    if sensitive is None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://***" if scheme.isalnum() else "***"
    out, last = [], 0
    for start, end in _secret_parts(url):
        out += [url[last:start], "***"]
        last = end
    out.append(url[last:])
    shown = "".join(out)
    return re.sub(r"//\*\*\*(:\*\*\*)?@", "//***@", shown, count=1)


# --- how a secret may look in a file -----------------------------------------------------------

_NAMED_ENTITIES = {"&": ("amp",), "<": ("lt",), ">": ("gt",), '"': ("quot",), "'": ("apos", "#39")}
_C_ESCAPES = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f", "\v": "v", "\0": "0"}
_BACKSLASH = r"(?:\\|%5[cC]|&(?:amp;)*#(?:0*92|[xX]0*5[cC]);)"


def _char_pattern(char: str, *, first: bool = False) -> str:
    """Every common encoding of one character as a regular expression: itself, backslash-escaped
    (repr, JSON, at any depth), percent-encoded (quote, quote_plus, either hex case), as an XML/HTML
    entity (named, decimal, hex, escaped again), or as a \\x/\\u escape."""
    if char.isascii() and char.isalnum():
        return re.escape(char)
    if char == "\\":
        return _BACKSLASH + f"{{1,{_MAX_BACKSLASH_RUN}}}"
    code = ord(char)
    options = [re.escape(char)]
    entity_names = [f"#0*{code}", "#[xX]0*" + _ci(f"{code:x}"), *_NAMED_ENTITIES.get(char, ())]
    options.append("&(?:amp;)*(?:" + "|".join(entity_names) + ");")
    utf8 = char.encode("utf-8", "surrogatepass")
    options.append("".join("%" + _ci(f"{b:02x}") for b in utf8))
    if char == " ":
        options.append(r"\+")
    escapes = []
    if char in _C_ESCAPES:
        escapes.append(_C_ESCAPES[char])
    if code < 0x100:
        escapes.append("x" + _ci(f"{code:02x}"))
    if code < 0x10000:
        escapes.append("u" + _ci(f"{code:04x}"))
    else:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        escapes.append("U" + _ci(f"{code:08x}"))
        escapes.append("u" + _ci(f"{high:04x}") + r"\\+u" + _ci(f"{low:04x}"))
    options.append(_BACKSLASH + "+(?:" + "|".join(escapes) + ")")
    alternatives = "(?:" + "|".join(options) + ")"
    if first:  # a backslash before the secret is not part of it; leaving it makes the scan faster
        return alternatives
    # repr and JSON put a backslash before quotes; re.escape and shells before any punctuation.
    return _BACKSLASH + f"{{0,{_MAX_BACKSLASH_RUN}}}" + alternatives


def _ci(hex_text: str) -> str:
    """A hex string matched in either case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in hex_text)


def _base64_fragments(secret: str) -> set[str]:
    """The base64 characters fixed by the secret alone, whatever precedes it in the encoded bytes
    (``Basic base64(user:secret)``): one fragment per byte alignment, standard and urlsafe."""
    data = secret.encode("utf-8")
    fragments = {base64.b64encode(data).decode()}
    for skip in (0, 1, 2):  # the bytes before the first group boundary share a group with the prefix
        chunk = data[skip:]
        whole = chunk[: len(chunk) // 3 * 3]
        fragments.add(base64.b64encode(whole).decode())
    fragments |= {f.replace("+", "-").replace("/", "_") for f in fragments}
    return {f for f in fragments if len(f) >= MIN_BASE64_CHARS}


@dataclass(frozen=True)
class _Form:
    """One secret's text encodings (a pattern) or one base64 fragment (a literal)."""

    length: int
    anchor: str  # a literal every match contains: a cheap substring test skips most texts
    pattern: re.Pattern[str] | None = None
    literal: str = ""

    def redact(self, text: str) -> str:
        if self.anchor not in text:
            return text
        return self.pattern.sub(REDACTED, text) if self.pattern is not None else text.replace(self.literal, REDACTED)


# Where a capped excerpt ends: the end of the text, a closing quote or tag, or a cut marker ("...",
# "…", "[12 more chars]", "[truncated 5 chars]").
_CUT_HERE = r"(?=\Z|[\"'<]|\.\.\.|…|\s*\[(?:truncated|\d+ more))"


def _cut_pattern(secret: str) -> str:
    """The secret's first MIN_SECRET_CHARS or more characters (any encoding, as ``_char_pattern``) right where
    an excerpt was cut: text capped before it was scrubbed keeps the start of a secret, which the whole-secret
    pattern no longer matches (a health body excerpt, a JUnit failure message)."""
    chars = [_char_pattern(c, first=i == 0) for i, c in enumerate(secret[:-1])]  # the whole one: the main form
    tail = ""
    for char in reversed(chars[MIN_SECRET_CHARS:]):
        tail = f"(?:{char}{tail})?"
    return "".join(chars[:MIN_SECRET_CHARS]) + tail + _CUT_HERE


@lru_cache(maxsize=64)
def _forms(secrets: frozenset[str]) -> tuple[_Form, ...]:
    forms: list[_Form] = []
    for secret in secrets:
        if len(secret) < MIN_SECRET_CHARS:
            continue
        runs = re.findall(r"[A-Za-z0-9]+", secret)  # ASCII letters and digits are never encoded
        anchor = max(runs, key=len) if runs else ""
        pattern = re.compile("".join(_char_pattern(c, first=i == 0) for i, c in enumerate(secret)))
        forms.append(_Form(len(secret), anchor, pattern=pattern))
        forms += [_Form(len(f), f, literal=f) for f in _base64_fragments(secret)]
        if len(secret) > MIN_SECRET_CHARS:  # after the whole forms (shorter): a cut start of the secret
            start_runs = re.findall(r"[A-Za-z0-9]+", secret[:MIN_SECRET_CHARS])
            cut_anchor = max(start_runs, key=len) if start_runs else ""
            forms.append(_Form(MIN_SECRET_CHARS, cut_anchor, pattern=re.compile(_cut_pattern(secret))))
    # Longest first: a longer secret that contains a shorter one goes whole.
    return tuple(sorted(forms, key=lambda form: -form.length))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every encoding of every secret in ``text`` by ``[redacted]``."""
    for form in _forms(frozenset(secrets)):
        text = form.redact(text)
    return text


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """``redact_text`` on bytes: UTF-8, with any other byte kept as it is."""
    text = data.decode("utf-8", "surrogateescape")
    redacted = redact_text(text, secrets)
    return data if redacted == text else redacted.encode("utf-8", "surrogateescape")


def redact_obj(obj: Any, secrets: frozenset[str]) -> Any:
    """Every string of a JSON-like object, keys included, redacted."""
    if not secrets:
        return obj
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    if isinstance(obj, dict):
        return {redact_obj(k, secrets): redact_obj(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v, secrets) for v in obj)
    return obj


def redact_file(path: Path, secrets: frozenset[str]) -> bool:
    """Scrub a kept file in place (atomically). Returns True when something was replaced."""
    if not secrets or not path.is_file():
        return False
    data = path.read_bytes()
    redacted = redact_bytes(data, secrets)
    if redacted == data:
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(redacted)
    os.replace(tmp, path)
    return True


def redact_tree(folder: Path, secrets: frozenset[str]) -> int:
    return sum(redact_file(p, secrets) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
