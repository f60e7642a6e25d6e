"""Usage analytics in the database: counting each host's samples once, and reading the sums back.

Counting runs inside a host's report transaction (`FleetTransactions.report`): it moves the host's
`usage_counted_at` forward with a compare-and-set on its old value, and adds the sample's share
(`gpubot.core.usage.count_sample`) to each GPU's minute and hour rows and to each claim's row with additive
upserts. So a sample is counted once per (host, sample time), whichever process reports it and however often,
and a crash either counts it whole or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from gpubot.core.history import RecentMinute
from gpubot.core.models import ClaimUsage, HostSample, Tally
from gpubot.core.usage import SampleUsage, UsageRule, add, count_sample
from gpubot.core.usage_report import (
    GpuFigures,
    HourUtilization,
    PersonUsage,
    PurposeUsage,
    UsageFigures,
    UsageFilter,
    UsageTotals,
)
from gpubot.storage import rows, tables
from gpubot.storage.tables import UtcDateTime
from gpubot.storage.transactions import SqlTransactions, Write

# Minute rows feed the recent trends only.
MINUTES_KEPT = timedelta(days=1)
_SUMS = ("observed_s", "busy_s", "utilization_s", "utilization_known_s")
_PEAKS = ("utilization_peak", "memory_peak_mib")
_hosts = tables.hosts
_claims = tables.claims
COUNTED_AT = select(_hosts.c.usage_counted_at).where(
    _hosts.c.name == bindparam("host_name"), _hosts.c.instance == bindparam("holding_instance")
)
# The compare-and-set that makes counting idempotent: only the process holding the name, only forward.
MARK_COUNTED = (
    update(_hosts)
    .where(
        _hosts.c.name == bindparam("host_name"),
        _hosts.c.instance == bindparam("holding_instance"),
        or_(_hosts.c.usage_counted_at.is_(None), _hosts.c.usage_counted_at < bindparam("at", type_=UtcDateTime())),
    )
    .values(usage_counted_at=bindparam("at", type_=UtcDateTime()))
)
# This host's claims that held a GPU at some moment of the span: active now, or ended within it.
CLAIMS_IN_SPAN = select(*_claims.c).where(
    _claims.c.host == bindparam("host_name"),
    or_(_claims.c.status == rows.ACTIVE, _claims.c.ended_at > bindparam("span_start", type_=UtcDateTime())),
    _claims.c.started_at < bindparam("at", type_=UtcDateTime()),
)


class UsageTransactions(SqlTransactions):
    """Counting samples into the usage tables, and the sums `/gpu usage`, receipts and the digest read."""

    def _count_usage(
        self, write: Write, name: str, instance: str, sample: HostSample, at: datetime, rule: UsageRule
    ) -> SampleUsage | None:
        """Count `sample` (taken at `at`) once, in the report's transaction; None when it was counted before."""
        holding = {"host_name": name, "holding_instance": instance}
        previous = write.execute(COUNTED_AT, holding).scalar_one_or_none()
        if write.execute(MARK_COUNTED, {**holding, "at": at}).rowcount != 1:
            return None
        span_start = at - rule.max_span
        claims = [
            rows.to_claim(row)
            for row in write.execute(CLAIMS_IN_SPAN, {"host_name": name, "at": at, "span_start": span_start})
        ]
        usage = count_sample(sample, previous, at, claims, rule)
        if usage.gpus:
            minute = at.replace(second=0, microsecond=0)
            hour = minute.replace(minute=0)
            write.execute(
                _accumulating(write.dialect, tables.gpu_usage_minutes),
                [
                    {"host": name, "gpu_uuid": gpu.uuid, "minute": minute, **_tally_values(gpu.tally)}
                    for gpu in usage.gpus
                ],
            )
            write.execute(
                _accumulating(write.dialect, tables.gpu_usage_hours),
                [
                    {"host": name, "gpu_uuid": gpu.uuid, "hour": hour, "gpu_name": gpu.name, **_tally_values(gpu.tally)}
                    for gpu in usage.gpus
                ],
            )
            by_model: dict[str, Tally] = {}
            for gpu in usage.gpus:
                model = gpu.name or ""
                by_model[model] = add(by_model.get(model, Tally()), gpu.tally)
            write.execute(
                _accumulating(write.dialect, tables.model_usage_hours),
                [
                    {"host": name, "gpu_name": model, "hour": hour, **_tally_values(tally)}
                    for model, tally in by_model.items()
                ],
            )
            if previous is None or previous.replace(minute=0, second=0, microsecond=0) != hour:
                self._forget_old_usage(write, name, at, rule.retention)
        for claim in usage.claims:
            self._add_claim_usage(write, claim)
        return usage

    def _add_claim_usage(self, write: Write, claim: ClaimUsage) -> None:
        known = write.execute(select(tables.claim_usage.c.users).where(tables.claim_usage.c.claim_id == claim.claim_id))
        users = set(filter(None, (known.scalar_one_or_none() or "").split(",")))
        values = {
            "claim_id": claim.claim_id,
            **_tally_values(claim.tally),
            "users": ",".join(sorted(users | claim.users)),
        }
        write.execute(_accumulating(write.dialect, tables.claim_usage), [values])

    def _forget_old_usage(self, write: Write, name: str, at: datetime, retention: timedelta) -> None:
        """Once an hour per host: its minute rows older than a day, and its hour rows older than the retention."""
        minutes = tables.gpu_usage_minutes
        write.execute(delete(minutes).where(minutes.c.host == name, minutes.c.minute < at - MINUTES_KEPT))
        for hours in (tables.gpu_usage_hours, tables.model_usage_hours):
            write.execute(delete(hours).where(hours.c.host == name, hours.c.hour < at - retention))

    # -- Reading ------------------------------------------------------------------------------------------

    def recent_minutes(self, since: datetime, until: datetime) -> list[RecentMinute]:
        """Every GPU's whole minutes in [since, until) with a known utilization, oldest first: to seed the trends."""
        minutes = tables.gpu_usage_minutes
        query = (
            select(minutes.c.gpu_uuid, minutes.c.minute, minutes.c.utilization_s, minutes.c.utilization_known_s)
            .where(minutes.c.minute >= since, minutes.c.minute < until, minutes.c.utilization_known_s > 0)
            .order_by(minutes.c.minute)
        )
        with self._reading() as connection:
            found = connection.execute(query).all()
        return [
            RecentMinute(row.gpu_uuid, row.minute, row.utilization_s / row.utilization_known_s, row.utilization_known_s)
            for row in found
        ]

    def claim_usage(self, claim_ids: Collection[int]) -> dict[int, ClaimUsage]:
        """What each of these claims' GPUs did while held, by claim ID; claims never observed are left out."""
        if not claim_ids:
            return {}
        table = tables.claim_usage
        with self._reading() as connection:
            found = connection.execute(select(*table.c).where(table.c.claim_id.in_(list(claim_ids)))).all()
        return {row.claim_id: rows.to_claim_usage(row.claim_id, row) for row in found}

    def usage_figures(
        self, since: datetime, until: datetime, where: UsageFilter, *, per_gpu: bool = False
    ) -> UsageFigures:
        """The sums for one person, host or GPU model, or (an empty filter) the whole team.

        Claims held within [since, until) with their tallies, prorated where a claim crosses the period's edge,
        and the hourly utilization of the GPUs (summed per host and model, so a team's is a few rows an hour);
        with `per_gpu`, each GPU's figures too (`gpubot usage --by gpu|host`).
        """
        claims, usage, hours = _claims, tables.claim_usage, tables.model_usage_hours
        model = None if where.model is None else f"%{where.model.lower()}%"
        claim_filter: list[ColumnElement[bool]] = [
            claims.c.started_at < until,
            or_(claims.c.ended_at.is_(None), claims.c.ended_at > since),
        ]
        if where.user_id is not None:
            claim_filter.append(claims.c.user_id == where.user_id)
        if where.host is not None:
            claim_filter.append(claims.c.host == where.host)
        if model is not None:
            # A claim's model is its GPU's, as the inventory names it.
            named = select(tables.gpus.c.uuid).where(func.lower(tables.gpus.c.name).like(model))
            claim_filter.append(or_(claims.c.gpu_uuid.in_(named), claims.c.parent_gpu_uuid.in_(named)))
        # Claims wholly inside the period are summed by the database; the few across its edges are prorated here.
        inside = and_(claims.c.started_at >= since, claims.c.ended_at.is_not(None), claims.c.ended_at <= until)
        joined = claims.outerjoin(usage, usage.c.claim_id == claims.c.id)
        summed = (
            select(
                claims.c.user_id,
                claims.c.purpose,
                func.count().label("claims"),
                func.sum(_seconds_held(self._engine.dialect.name)).label("held_s"),
                func.sum(func.coalesce(usage.c.observed_s, 0.0)).label("observed_s"),
                func.sum(func.coalesce(usage.c.busy_s, 0.0)).label("busy_s"),
            )
            .select_from(joined)
            .where(*claim_filter, inside)
            .group_by(claims.c.user_id, claims.c.purpose)
        )
        columns = (
            claims.c.host,
            claims.c.gpu_uuid,
            claims.c.user_id,
            claims.c.purpose,
            claims.c.started_at,
            claims.c.ended_at,
            claims.c.ends_at,
            usage.c.observed_s,
            usage.c.busy_s,
        )
        # Each GPU's hours held need every claim: only the host's tables ask for them.
        each = select(*columns).select_from(joined).where(*claim_filter, *(() if per_gpu else (not_(inside),)))
        hour_filter: list[ColumnElement[bool]] = [hours.c.hour >= since - timedelta(hours=1), hours.c.hour < until]
        if where.host is not None:
            hour_filter.append(hours.c.host == where.host)
        if model is not None:
            hour_filter.append(func.lower(hours.c.gpu_name).like(model))
        hour_rows = (
            select(
                hours.c.hour,
                func.sum(hours.c.utilization_s).label("utilization_s"),
                func.sum(hours.c.utilization_known_s).label("known_s"),
            )
            .where(*hour_filter)
            .group_by(hours.c.hour)
        )
        with self._reading() as connection:
            found = connection.execute(each).all()
            pieces = [_prorated(row, since, until) for row in found]
            if not per_gpu:
                # julianday's day fractions are a few microseconds off a whole second; PostgreSQL's epoch is a Decimal.
                pieces += [
                    _Piece(
                        row.user_id,
                        row.purpose,
                        round(float(row.held_s), 3),
                        float(row.observed_s),
                        float(row.busy_s),
                        row.claims,
                    )
                    for row in connection.execute(summed)
                ]
            # One person's busiest hours would be their GPUs' while they held them: finer than the hour rows.
            hourly = connection.execute(hour_rows).all() if where.user_id is None else []
            gpu_rows = connection.execute(_gpu_rows(since, until, where.host, model)).all() if per_gpu else []
        return UsageFigures(
            people=_people(pieces),
            purposes=tuple(PurposeUsage(piece.purpose, piece.held_s) for piece in pieces),
            hours=tuple(
                HourUtilization(row.hour, row.utilization_s / row.known_s, row.known_s) for row in hourly if row.known_s
            ),
            gpus=_gpus(found, gpu_rows, since, until) if per_gpu else (),
        )


def _held_within(row: Any, since: datetime, until: datetime) -> tuple[float, float]:
    """A claim's seconds held within the period, and the share of its whole hold that is."""
    end = row.ended_at if row.ended_at is not None else min(row.ends_at, until)
    whole = (end - row.started_at).total_seconds()
    within = (min(end, until) - max(row.started_at, since)).total_seconds()
    if whole <= 0 or within <= 0:
        return 0.0, 0.0
    return within, within / whole


@dataclass(frozen=True)
class _Piece:
    """Claims of one person for one purpose within the period: seconds held, observed and busy, and how many."""

    user_id: str
    purpose: str
    held_s: float
    observed_s: float
    busy_s: float
    claims: int


def _prorated(row: Any, since: datetime, until: datetime) -> _Piece:
    """One claim's share of the period (the part of it held within), its tally in the same proportion."""
    held, share = _held_within(row, since, until)
    observed = min((row.observed_s or 0.0) * share, held)
    return _Piece(row.user_id, row.purpose, held, observed, (row.busy_s or 0.0) * share, 1 if held > 0 else 0)


def _people(pieces: Sequence[_Piece]) -> tuple[PersonUsage, ...]:
    totals: dict[str, UsageTotals] = {}
    for piece in pieces:
        if piece.claims == 0:
            continue
        more = UsageTotals(piece.held_s, piece.observed_s, piece.busy_s, piece.claims)
        totals[piece.user_id] = totals.get(piece.user_id, UsageTotals()) + more
    return tuple(PersonUsage(user_id, total) for user_id, total in totals.items())


def _gpu_rows(since: datetime, until: datetime, host: str | None, model: str | None) -> Select[Any]:
    """Each GPU's hours in the period, summed: for the host's tables, not for Slack's deadline."""
    hours = tables.gpu_usage_hours
    conditions: list[ColumnElement[bool]] = [hours.c.hour >= since - timedelta(hours=1), hours.c.hour < until]
    if host is not None:
        conditions.append(hours.c.host == host)
    if model is not None:
        conditions.append(func.lower(hours.c.gpu_name).like(model))
    return (
        select(
            hours.c.host,
            hours.c.gpu_uuid,
            func.max(hours.c.gpu_name).label("gpu_name"),
            func.sum(hours.c.observed_s).label("observed_s"),
            func.sum(hours.c.busy_s).label("busy_s"),
            func.sum(hours.c.utilization_s).label("utilization_s"),
            func.sum(hours.c.utilization_known_s).label("known_s"),
        )
        .where(*conditions)
        .group_by(hours.c.host, hours.c.gpu_uuid)
    )


def _gpus(found: Sequence[Any], per_gpu: Sequence[Any], since: datetime, until: datetime) -> tuple[GpuFigures, ...]:
    """Each GPU seen or claimed: hours held by claims (prorated as `_people`), and what telemetry saw of it."""
    held: dict[tuple[str, str], float] = {}
    for row in found:
        key = (row.host, row.gpu_uuid)
        held[key] = held.get(key, 0.0) + _held_within(row, since, until)[0]
    seen = {(row.host, row.gpu_uuid): row for row in per_gpu}
    return tuple(
        GpuFigures(
            host,
            uuid,
            seen[(host, uuid)].gpu_name if (host, uuid) in seen else None,
            held.get((host, uuid), 0.0),
            seen[(host, uuid)].observed_s if (host, uuid) in seen else 0.0,
            seen[(host, uuid)].busy_s if (host, uuid) in seen else 0.0,
            (seen[(host, uuid)].utilization_s / seen[(host, uuid)].known_s)
            if (host, uuid) in seen and seen[(host, uuid)].known_s
            else None,
        )
        for host, uuid in sorted(held.keys() | seen.keys())
    )


def _seconds_held(dialect: str) -> ColumnElement[float]:
    """A claim's ended_at − started_at in seconds, as this database computes it."""
    claims = _claims
    if dialect == "postgresql":
        return func.extract("epoch", claims.c.ended_at - claims.c.started_at)  # type: ignore[return-value]
    # SQLite keeps the times as text in UTC, which julianday reads.
    return (func.julianday(claims.c.ended_at) - func.julianday(claims.c.started_at)) * 86400.0


def _tally_values(tally: Tally) -> dict[str, Any]:
    return {
        "observed_s": tally.observed_s,
        "busy_s": tally.busy_s,
        "utilization_s": tally.utilization_s,
        "utilization_known_s": tally.utilization_known_s,
        "utilization_peak": tally.utilization_peak,
        "memory_peak_mib": tally.memory_peak_mib,
    }


# The upsert of each usage table, per dialect: built once, run with one parameter set per row (executemany).
_UPSERTS: dict[tuple[str, str], Insert] = {}
# The columns that identify a row, and those a newer row replaces, per table.
_KEYS = {
    "gpu_usage_minutes": (("host", "gpu_uuid", "minute"), ()),
    "gpu_usage_hours": (("host", "gpu_uuid", "hour"), ("gpu_name",)),
    "model_usage_hours": (("host", "gpu_name", "hour"), ()),
    "claim_usage": (("claim_id",), ("users",)),
}


def _accumulating(dialect: str, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO UPDATE`` that adds the sums and keeps the higher peaks (NULL: unknown)."""
    cached = _UPSERTS.get((dialect, table.name))
    if cached is not None:
        return cached
    key, replace = _KEYS[table.name]
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    new = statement.excluded
    higher = func.greatest if dialect == "postgresql" else func.max
    set_: dict[str, Any] = {column: table.c[column] + new[column] for column in _SUMS}
    for column in _PEAKS:
        old = table.c[column]
        set_[column] = case((old.is_(None), new[column]), (new[column].is_(None), old), else_=higher(old, new[column]))
    set_.update({column: new[column] for column in replace})
    upsert = statement.on_conflict_do_update(index_elements=list(key), set_=set_)
    _UPSERTS[(dialect, table.name)] = upsert
    return upsert
