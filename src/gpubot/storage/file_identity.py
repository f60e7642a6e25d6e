"""`FileIdentity`: is a SQLite file still the one that was opened?

A file deleted or replaced under a running process keeps taking its writes (to the unlinked copy) and
they vanish at the next start, claims Slack confirmed among them. The store checks before every write.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy import Engine

from gpubot.core.errors import StoreReplaced
from gpubot.storage.engine import sqlite_file

logger = logging.getLogger(__name__)


class FileIdentity:
    """A SQLite file's device and inode when it was opened, to tell whether it is still there and the same."""

    def __init__(self, path: str, identity: tuple[int, int]) -> None:
        self._path = path
        self._identity = identity
        self._lost: StoreReplaced | None = None

    @classmethod
    def of(cls, engine: Engine) -> FileIdentity | None:
        """The identity of `engine`'s SQLite file; None for another database or a file not there yet."""
        file = sqlite_file(engine.url)
        if file is None:
            return None
        path = os.path.abspath(file)
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return cls(path, (stat.st_dev, stat.st_ino))

    def check(self) -> None:
        """Check that the file is still the one opened.

        Raises:
            StoreReplaced: it was deleted or replaced; from then on, every time.
        """
        if self._lost is None:
            try:
                stat = os.stat(self._path)
            except FileNotFoundError:
                self._lost = StoreReplaced(self._path, "deleted")
            except OSError:
                return  # cannot tell (e.g. a directory not searchable for a moment): SQLite will say
            else:
                if (stat.st_dev, stat.st_ino) != self._identity:
                    self._lost = StoreReplaced(self._path, "replaced")
            if self._lost is not None:
                logger.error("the %s: refusing every change until gpubot is restarted", self._lost.status)
        if self._lost is not None:
            raise StoreReplaced(self._lost.path, self._lost.what)
