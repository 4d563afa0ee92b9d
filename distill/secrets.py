"""Keep configured secrets out of everything distill writes, prints or answers.

An upstream may echo request headers in its error body; a user may paste a key into a task.
``scrub`` is the wall at every exit: the replay log, ``--json`` output, error messages, the
server's answers and its log. The secrets are read from the environment at each call, so there
is no state to keep in sync.
"""

from __future__ import annotations

import json
import logging
import os

# the model key, the escalation key (distill/replay/config.py) and the serve token (remote.py)
SECRET_ENV_VARS = ("DISTILL_API_KEY", "DISTILL_ESCALATION_API_KEY", "DISTILL_API_TOKEN")
# the object store's credentials: distill never reads them (boto3 and LanceDB do), but a
# library's error message might carry one, so they are scrubbed all the same
CLOUD_SECRET_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
REDACTED = "[redacted]"
# Shorter values are not keys, and replacing them would mangle ordinary words and JSON keys.
MIN_SECRET_CHARS = 8


def secret_values() -> list[str]:
    """The configured secrets and the forms they take inside JSON, longest first."""
    forms: set[str] = set()
    for name in (*SECRET_ENV_VARS, *CLOUD_SECRET_ENV_VARS):
        value = os.environ.get(name, "")
        if len(value) < MIN_SECRET_CHARS:
            continue
        for ensure_ascii in (True, False):
            escaped = json.dumps(value, ensure_ascii=ensure_ascii)[1:-1]
            forms.update({value, escaped, escaped.replace("/", "\\/")})
    return sorted(forms, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every configured secret (raw or JSON-escaped) replaced by ``[redacted]``.

    With ``DISTILL_API_KEY=sk-0123456789``: ``scrub("Bearer sk-0123456789")`` is
    ``"Bearer [redacted]"``.
    """
    for secret in secret_values():
        text = text.replace(secret, REDACTED)
    return text


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs a record's message, string arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True
