"""Logging to stderr (journald collects it) with Slack tokens scrubbed from every record."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

# Any Slack token shape, not only ours: slack_sdk logs whole request bodies at DEBUG.
_TOKEN = re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]+")
_REDACTED = "[redacted]"


class RedactTokens(logging.Filter):
    """Rewrites each record's message so that no Slack token reaches a handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def redact(self, text: str) -> str:
        """`text` with the configured secrets and anything shaped like a Slack token replaced."""
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return _TOKEN.sub(_REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place, its message and traceback rendered first; never drops it."""
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, so the handler does not render the raw one.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _DropBoltClientWarning(logging.Filter):
    """Drops Bolt's warning, on every start, that SLACK_BOT_TOKEN goes unused.

    Bolt reads the token from the environment itself; gpubot hands it a client of its own (for the API URL
    and `authorize`), so the token is unused by design.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("As you gave `client` as well")


def configure_logging(level: int, secrets: Iterable[str] = ()) -> None:
    """Send every logger's records to stderr through the token filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactTokens(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces each of its plugins at INFO on every start; only its migration lines are news.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(level, logging.WARNING))
    # APScheduler logs every run of the due-work job at INFO: two lines every two seconds.
    logging.getLogger("apscheduler.executors.default").setLevel(max(level, logging.WARNING))
    logging.getLogger("slack_bolt.AsyncApp").addFilter(_DropBoltClientWarning())
    # slack_sdk's Web API clients test `logger.level <= DEBUG` rather than `isEnabledFor(DEBUG)`, so on a logger without
    # a level of its own (0) they render every request and response, whole Home views included, into a debug string that
    # is then dropped: a large share of a Home publish's CPU (see BENCHMARKS.md, 'What was changed to meet the
    # targets').
    for name in ("slack_sdk.web.async_base_client", "slack_sdk.web.base_client"):
        logging.getLogger(name).setLevel(level)
