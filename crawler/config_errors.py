"""Configuration mistakes in words an operator can act on: a bad setting becomes one line naming
the variable, what is wrong and the fix; a variable forecourt does not know (a typo, so its
value is silently ignored) is named with the closest one it does know."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from crawler.errors import ConfigError

PREFIX = "FORECOURT_"
# Variables read under their conventional names (and FORECOURT_ ones): field -> name shown.
SERVER_VARIABLES = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}
CONVENTIONAL = {**SERVER_VARIABLES, "forwarded_allow_ips": "FORWARDED_ALLOW_IPS"}  # uvicorn's
# Settings whose values may hold a password: never echoed.
SECRET = {"database_url", "redis_url", "api_metrics_token"}

# How to write a value, where "fix it, or unset it" is not enough.
HINTS = {
    "database_url": "use postgresql://USER:PASSWORD@HOST:5432/DBNAME, or unset it to use "
                    "the embedded server",
    "redis_url": "use redis://[:PASSWORD@]HOST:6379/0 with the database number as its "
                 "path, rediss:// for TLS or unix:///PATH for a socket; or unset it to use "
                 "the embedded server",
    "allow_private_hosts": """write a JSON list: FORECOURT_ALLOW_PRIVATE_HOSTS='["127.0.0.1"]'""",
    "api_cors_origins": """write a JSON list: FORECOURT_API_CORS_ORIGINS='["https://ui.example"]'""",
    "forwarded_allow_ips": "list your reverse proxies' addresses or CIDR networks, comma-"
                           "separated: FORWARDED_ALLOW_IPS=10.0.0.0/8,127.0.0.1; or unset it "
                           "for the default 127.0.0.1,::1",
    "api_metrics_token": "set it to a long random secret, e.g. "
                         "FORECOURT_API_METRICS_TOKEN=$(openssl rand -hex 32), or to the old "
                         "and the new one, comma-separated, while rotating it; or unset it to "
                         "let operator tokens alone read /metrics",
    "platform_rate_limits": """write a JSON object of requests per second: """
                            """FORECOURT_PLATFORM_RATE_LIMITS='{"dealercom": 10}'""",
}
_WHAT = {"int_parsing": "a whole number", "int_from_float": "a whole number",
         "float_parsing": "a number", "bool_parsing": "true or false"}


def variable(field: str) -> str:
    return CONVENTIONAL.get(field, PREFIX + field.upper())


def explain(exc: ValidationError | SettingsError) -> ConfigError:
    """One ConfigError for the first thing wrong in the settings (and how many more there are)."""
    if isinstance(exc, SettingsError):  # a list or dict setting that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        field = found.group(1) if found else ""
        name = variable(field) if field else "a FORECOURT_ setting"
        return ConfigError(f"{name} is not valid JSON",
                           hint=HINTS.get(field, "write it as JSON, or unset it"))
    errors = exc.errors()
    first, more = errors[0], len(errors) - 1
    loc = str(first["loc"][0]) if first["loc"] else ""
    field = next((f for f, n in CONVENTIONAL.items() if loc.upper() in (n, PREFIX + n)), loc)
    message = first["msg"].removeprefix("Value error, ")
    if message.startswith(("Input ", "String ")):  # pydantic's sentence, inside ours
        message = message[0].lower() + message[1:]
    tail = f" (and {more} more setting error{'s' if more > 1 else ''})" if more else ""
    if not field:  # settings that contradict each other: the message names them
        return ConfigError(message + tail, hint="change one of them, or unset both to use "
                                                "the defaults")
    name = variable(field)
    shown = "" if field in SECRET else f"={first.get('input')!r}"
    if first["type"] == "value_error":  # our validators' messages start with their verb
        line = f"{name}{shown} {message}{tail}"
    else:
        line = f"{name}{shown} is not valid: {message}{tail}"
    return ConfigError(line, hint=HINTS.get(field) or _fix(field, first))


def _fix(field: str, error) -> str:
    """'set it to 1 or more, or unset it for the default 4'."""
    from crawler.config import Settings

    ctx = error.get("ctx") or {}
    if "gt" in ctx:
        what = f"a value above {ctx['gt']}"
    elif "ge" in ctx:
        what = f"{ctx['ge']} or more"
    elif "le" in ctx:
        what = f"{ctx['le']} or less"
    else:
        what = _WHAT.get(error["type"], "")
    info = Settings.model_fields.get(field)
    default = info.get_default(call_default_factory=True) if info else None
    if isinstance(default, bool):
        default = str(default).lower()
    unset = f"unset it for the default {default}" if default is not None else "unset it"
    return f"set it to {what}, or {unset}" if what else f"fix it, or {unset}"

def known_variables() -> set[str]:
    from crawler.config import Settings

    names = {PREFIX + f.upper() for f in Settings.model_fields}
    return names | set(CONVENTIONAL.values())


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each FORECOURT_ variable that is no setting (forecourt ignores it), with
    the closest setting's name; and for a near-miss of DATABASE_URL or REDIS_URL while that
    one is unset (forecourt would quietly use its embedded server instead)."""
    known = known_variables()
    present = {k.upper() for k in environ}
    warnings = []
    for key in sorted(environ):
        upper = key.upper()
        if upper in known:
            continue
        if upper.startswith(PREFIX):
            close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
            fix = f"did you mean {close[0]}?" if close else \
                "see the Environment section of README.md"
            warnings.append(f"{key} is not a forecourt setting and is ignored ({fix})")
            continue
        for server in SERVER_VARIABLES.values():
            if server not in present and server not in upper and \
                    difflib.SequenceMatcher(None, upper, server).ratio() >= 0.85:
                warnings.append(f"{key} is not read by forecourt (did you mean {server}? "
                                f"without it forecourt uses its embedded server)")
    return warnings
