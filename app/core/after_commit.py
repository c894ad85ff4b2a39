"""Work that must follow a successful commit (enqueue a task, count an event), dropped on rollback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("hardcase.after_commit")
_KEY = "after_commit_callbacks"


def on_commit(db_session: Session, callback: Callable[[], None]) -> None:
    """Runs `callback` once the session's current transaction commits; a rollback discards it."""
    if _KEY not in db_session.info:
        db_session.info[_KEY] = []
        event.listen(db_session, "after_commit", _run_callbacks)
        event.listen(db_session, "after_rollback", _drop_callbacks)
    db_session.info[_KEY].append(callback)


def _run_callbacks(db_session: Session) -> None:
    callbacks, db_session.info[_KEY] = db_session.info.get(_KEY, []), []
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the commit happened; a failed follow-up must not turn it into an error
            log.exception("after-commit callback failed")


def _drop_callbacks(db_session: Session) -> None:
    db_session.info[_KEY] = []
