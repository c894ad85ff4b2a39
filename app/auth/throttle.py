"""Login with throttling shared by every API process (failed attempts are rows in `login_failures`).

Policy (the numbers are `LoginPolicy`'s defaults):
- Per client IP, across usernames: 20 failures within 10 minutes block that IP's logins until 10 minutes after
  its latest failure. Spraying many usernames from one address is stopped here.
- Per account and client IP: 5 failures within 5 minutes block that account from that IP for 5 minutes after
  the latest failure. A guesser is locked out; the holder on another network is not.
- Per account from all IPs (the looser global cap): once an account collects 30 failures within 10 minutes,
  every client that has itself failed on it in that time waits 30 seconds after its own latest failure.
  A distributed guesser gets one try per address per 30 seconds; a client with no failure on the account,
  such as the holder typing the right password, is never held back, so no stranger can lock the holder out.
Throttled attempts are refused before the password is checked (a right guess reveals nothing) and are not
counted; a successful login clears that account's failures from that IP. Rows older than the longest window
are deleted as new failures arrive. Behind a reverse proxy the client IP must come from the proxy's
forwarded header (uvicorn --proxy-headers / --forwarded-allow-ips), or every user shares the proxy's address.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from app.auth.models import LoginFailure, User
from app.auth.passwords import hash_password, verify_password
from app.auth.users import get_by_username
from app.core.db import utcnow


@dataclass(frozen=True)
class LoginPolicy:
    ip_max_failures: int = 20
    ip_window_s: int = 600
    account_ip_max_failures: int = 5
    account_ip_window_s: int = 300
    account_max_failures: int = 30
    account_window_s: int = 600
    account_backoff_s: int = 30


DEFAULT_POLICY = LoginPolicy()


class LoginThrottled(Exception):
    """Too many failed logins; `retry_after_s` says how long to wait."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def account_key(username: str) -> str:
    # NUL cannot be stored in PostgreSQL text; such a name matches no account anyway.
    return username.strip().lower().replace("\x00", "?")[:100]


def ip_key(client_ip: str) -> str:
    return (client_ip or "unknown")[:64]


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def _until(latest: datetime | None, wait_s: int) -> datetime | None:
    latest = _as_utc(latest)
    return None if latest is None else latest + timedelta(seconds=wait_s)


def retry_after(
    *,
    db_session: Session,
    username: str,
    client_ip: str,
    policy: LoginPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> int | None:
    """Seconds until this client may try this account again, or None when it may try now."""
    now = now or utcnow()
    user, ip = account_key(username), ip_key(client_ip)
    ip_since = now - timedelta(seconds=policy.ip_window_s)
    pair_since = now - timedelta(seconds=policy.account_ip_window_s)
    account_since = now - timedelta(seconds=policy.account_window_s)
    is_ip = and_(LoginFailure.client_ip == ip, LoginFailure.failed_at > ip_since)
    is_pair = and_(
        LoginFailure.username == user, LoginFailure.client_ip == ip, LoginFailure.failed_at > pair_since
    )
    is_account = and_(LoginFailure.username == user, LoginFailure.failed_at > account_since)
    is_own = and_(is_account, LoginFailure.client_ip == ip)
    row = db_session.execute(
        select(
            func.sum(case((is_ip, 1), else_=0)),
            func.max(case((is_ip, LoginFailure.failed_at))),
            func.sum(case((is_pair, 1), else_=0)),
            func.max(case((is_pair, LoginFailure.failed_at))),
            func.sum(case((is_account, 1), else_=0)),
            func.max(case((is_own, LoginFailure.failed_at))),
        ).where(
            or_(LoginFailure.client_ip == ip, LoginFailure.username == user),
            LoginFailure.failed_at > min(ip_since, pair_since, account_since),
        )
    ).one()
    ip_count, ip_latest, pair_count, pair_latest, account_count, own_latest = row
    blocked_until = [
        _until(ip_latest, policy.ip_window_s) if (ip_count or 0) >= policy.ip_max_failures else None,
        _until(pair_latest, policy.account_ip_window_s)
        if (pair_count or 0) >= policy.account_ip_max_failures
        else None,
        _until(own_latest, policy.account_backoff_s)
        if (account_count or 0) >= policy.account_max_failures
        else None,
    ]
    latest = max((u for u in blocked_until if u is not None), default=None)
    if latest is None or latest <= now:
        return None
    return max(1, math.ceil((latest - now).total_seconds()))


def record_failure(
    *,
    db_session: Session,
    username: str,
    client_ip: str,
    policy: LoginPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    longest = max(policy.ip_window_s, policy.account_ip_window_s, policy.account_window_s)
    db_session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - timedelta(seconds=longest)))
    db_session.add(LoginFailure(username=account_key(username), client_ip=ip_key(client_ip), failed_at=now))
    db_session.flush()


def record_success(*, db_session: Session, username: str, client_ip: str) -> None:
    db_session.execute(
        delete(LoginFailure).where(
            LoginFailure.username == account_key(username), LoginFailure.client_ip == ip_key(client_ip)
        )
    )


@cache
def _unknown_user_hash() -> str:
    """Checked against for unknown usernames: the same argon2 work, so timing does not reveal who exists."""
    return hash_password("no such user")


def login_attempt(
    *,
    db_session: Session,
    username: str,
    password: str,
    client_ip: str,
    policy: LoginPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> User | None:
    """The user when the credentials are right, None when wrong; raises LoginThrottled while blocked.

    Commits: a failure must count whatever the caller does next. The (slow) password check runs outside
    any transaction, so SQLite's write lock is not held while argon2 works.
    """
    wait = retry_after(db_session=db_session, username=username, client_ip=client_ip, policy=policy, now=now)
    if wait is not None:
        db_session.commit()
        raise LoginThrottled(wait)
    user = None if "\x00" in username else get_by_username(db_session=db_session, username=username.strip())
    db_session.commit()
    right = verify_password(user.password_hash if user else _unknown_user_hash(), password)
    if user is None or not user.is_active or not right:
        record_failure(db_session=db_session, username=username, client_ip=client_ip, policy=policy, now=now)
        db_session.commit()
        wait = retry_after(
            db_session=db_session, username=username, client_ip=client_ip, policy=policy, now=now
        )
        db_session.commit()
        if wait is not None:
            raise LoginThrottled(wait)
        return None
    record_success(db_session=db_session, username=username, client_ip=client_ip)
    return user
