"""From what a person names (an account, a company, a user, a day) to `SearchFilters` of ids
and instants, and the grant of the command line's all-seeing administrator."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casella.access import Grant
from casella.errors import NotFound
from casella.models import Account, Company
from casella.settings import Settings
from casella.users import get_user
from search.errors import InvalidSearch
from search.index import SearchFilters

CLI_ADMIN = "(command line)"


def admin_grant() -> Grant:
    """Everything, personal mailboxes included: the operator of the server at its shell."""
    return Grant(CLI_ADMIN, "admin", everything=True)


def resolve_filters(session: Session, settings: Settings, *, account: str | None = None, folder: str | None = None,
                    sender: str | None = None, since: str | None = None, until: str | None = None,
                    has_attachment: bool | None = None, pec_kind: str | None = None, company: str | None = None,
                    assigned: str | None = None, tag: str | None = None, pratica: str | None = None,
                    unknown: bool = False) -> SearchFilters:
    tz = ZoneInfo(settings.timezone)
    account_ids: frozenset[int] = frozenset()
    if account:
        found = session.scalar(select(Account.id).where(Account.name == account))
        if found is None:
            raise NotFound(f"no account named {account!r}; `casella account list` shows them")
        account_ids = frozenset({found})
    return SearchFilters(
        account_ids=account_ids, folder=folder or None, sender=sender or None,
        since=parse_day(since, tz, "--since", end=False) if since else None,
        until=parse_day(until, tz, "--until", end=True) if until else None,
        has_attachment=has_attachment, pec_kind=pec_kind or None,
        company_id=company_id(session, company) if company else None,
        assigned_user_id=get_user(session, assigned).id if assigned else None,
        tag=tag or None, pratica=pratica or None, unknown=unknown)


def parse_day(value: str, tz: ZoneInfo, option: str, *, end: bool) -> datetime:
    """2026-03-01 (the whole day, in Casella's time zone) or an ISO date and time."""
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").date()
            moment = datetime.combine(day, time.max if end else time.min, tzinfo=tz)
        else:
            moment = datetime.fromisoformat(value)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    except ValueError:
        raise InvalidSearch(f"{option} {value!r}: expected a date like 2026-03-01 or 2026-03-01T09:30") from None
    return moment.astimezone(UTC)


def company_id(session: Session, name_or_id: str) -> int:
    """A company by id, or by its name (case does not matter)."""
    if name_or_id.isdigit():
        found = session.get(Company, int(name_or_id))
        if found is None:
            raise NotFound(f"no company with id {name_or_id}")
        return found.id
    ids = list(session.scalars(select(Company.id).where(func.lower(Company.name) == name_or_id.lower())))
    if not ids:
        raise NotFound(f"no company named {name_or_id!r}; `casella contacts export` lists them")
    if len(ids) > 1:
        raise InvalidSearch(f"{len(ids)} companies are named {name_or_id!r}; "
                            f"give the id instead ({', '.join(map(str, ids))})")
    return ids[0]
