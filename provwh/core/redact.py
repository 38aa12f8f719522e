"""Keeping secrets out of records and log lines.

Values under secret-looking names become ``"REDACTED"`` (Flowcept's word), and text loses the
credentials it holds: URL passwords (``scheme://user:REDACTED@host``), secret-looking URL query
parameters (``?password=REDACTED``, ``sslpassword``, ``token``, ``api_key``...) and
``name=value`` pairs of connection strings (``host=h password=REDACTED``, ``PWD=REDACTED;``).
Settings snapshots, machine info, environment values, command lines and the log lines that
name a database or a broker all go through here.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

REDACTED = "REDACTED"

_SECRET_PARTS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "passphrase",
        "secret",
        "token",
        "key",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "private",
        "cookie",
        "session",
        "signature",
        "cert",
        "dsn",
    }
)
_CHUNKS = re.compile(r"[^A-Za-z0-9]+")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")  # camelCase / ACRONYMWord parts
# scheme://user:password@host -> keeps the user, hides the password (up to the last @)
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/\s:@]*):[^/\s]*@")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a key or variable name looks like it holds a secret.

    Matches whole word parts (split on ``_ - .`` and camelCase), so ``GITHUB_TOKEN`` and
    ``apiKey`` are secrets while ``MONKEYPATCH``, ``KEYBOARD`` and ``PWD`` are not.
    """
    for chunk in _CHUNKS.split(name):
        for word in _WORDS.findall(chunk):
            word = word.lower()
            if word in _SECRET_PARTS or (word.endswith("s") and word[:-1] in _SECRET_PARTS):
                return True
    return False


# name=value: a URL's query parameter (``?password=x&``), a libpq / ODBC connection string's
# keyword (``password='x y'``, ``PWD=x;``), an option (``--token=x``); values end at a space, a
# separator or a quote, or are quoted
_PAIR = re.compile(
    r"""(?<![A-Za-z0-9_.])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P<eq>[ \t]*=[ \t]*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,'"#]*)"""
)
# parameter names that are secrets even as one word (sslpassword, client_secret, x-api-key)
_SECRET_SUFFIXES = ("password", "passwd", "pwd", "secret", "token", "apikey", "api_key")


def is_secret_parameter(name: str) -> bool:
    """Whether a URL parameter or connection-string keyword names a secret."""
    return is_secret_name(name) or name.lower().replace("-", "_").endswith(_SECRET_SUFFIXES)


def _hide_pair(m: re.Match) -> str:
    if not m["value"] or not is_secret_parameter(m["name"]):
        return m.group(0)
    return f"{m['name']}{m['eq']}{REDACTED}"


def redact_url(text: str) -> str:
    """Hide the credentials in ``text``: URL passwords (``scheme://user:REDACTED@host``),
    secret URL query parameters (``?password=REDACTED``) and connection-string pairs
    (``password=REDACTED``)."""
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
    if "=" in text:
        text = _PAIR.sub(_hide_pair, text)
    return text


def redact(obj: Any) -> Any:
    """A deep copy of ``obj`` with secrets hidden.

    Values under secret-looking keys become ``"REDACTED"`` (None stays None: it reveals nothing),
    and passwords in URL strings are replaced.
    """
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            secret = isinstance(key, str) and is_secret_name(key) and value is not None
            out[key] = REDACTED if secret else redact(value)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_url(obj)
    try:
        return copy.deepcopy(obj)
    except Exception:  # an object that cannot be copied is passed through as it is
        return obj


def redact_argv(argv: list[str]) -> list[str]:
    """Command-line arguments with secret option values hidden.

    ``--password=x`` becomes ``--password=REDACTED``, the value after ``--token`` becomes
    ``REDACTED``, and URL passwords anywhere are replaced.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        name, eq, _value = arg.partition("=")
        if eq and name and is_secret_name(name.lstrip("-")):
            out.append(f"{name}={REDACTED}")
        elif arg.startswith("-") and not eq and is_secret_name(arg.lstrip("-")):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact_url(arg))
    return out
