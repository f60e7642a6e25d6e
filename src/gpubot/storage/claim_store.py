"""`SqlClaimStore`: the core's `ClaimStore` port on SQLAlchemy (SQLite or PostgreSQL).

Every public method is one transaction, run through SQLAlchemy Core: rows are only ever copied into the core's frozen
dataclasses, so the ORM's unit of work would add cost and nothing else (see BENCHMARKS.md, 'What was changed to meet the
targets'). Races are decided by the database: the partial unique index on active claims picks one winner among
concurrent claims, and every state change is a conditional ``UPDATE ... WHERE status = 'active'`` so a retried or racing
change applies at most once.

The hot reads (GPUs, active claims) are answered from the read snapshot (`storage/snapshot.py`); the
transactions themselves are in `storage/transactions.py`, the outbox's and people's in `storage/outbox_store.py`, the
fleet's hosts' in `storage/fleet_store.py` and the Slack events' in `storage/slack_event_store.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import NoReturn

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from gpubot.core.errors import AlreadyHeld, ClaimChanged, ClaimNotActive, StoreBusy
from gpubot.core.models import Claim, ClaimStatus, EventKind, Gpu, NewClaim, Notice, NoticeKind
from gpubot.storage import rows, tables
from gpubot.storage.digest_store import DigestTransactions
from gpubot.storage.fleet_store import FleetTransactions
from gpubot.storage.outbox_store import OutboxTransactions
from gpubot.storage.rows import require_aware
from gpubot.storage.slack_event_store import SlackEventTransactions
from gpubot.storage.transactions import Write

# How often a claim that lost the unique-index race looks for the winner and, finding none (it ended in
# between), tries again before answering "busy".
_CREATE_ATTEMPTS = 3

# What a sync updates in a GPU it already knows.
_GPU_COLUMNS_SYNCED = ("index", "name", "present", "last_seen_at", "mig_index", "parent_uuid", "mig_profile")


class SqlClaimStore(OutboxTransactions, FleetTransactions, SlackEventTransactions, DigestTransactions):
    """Claims, their audit log, the DM outbox, the fleet's hosts and the Slack events handled, in a SQL database.

    Args:
        engine: from `gpubot.storage.engine.make_engine`; SQLite or PostgreSQL.
        on_notice_queued: called, in the writing thread, after a transaction that queued a DM committed,
            so the sender can deliver it at once instead of at its next poll.
        notifications: PostgreSQL only: a started `PgNotifications` on the same database, which keeps the
            read snapshot current (LISTEN/NOTIFY); without one, every read there goes to the database.
        process: the process registering host names (see `FleetTransactions`); default this one.
        pid_alive: whether a PID of this machine runs; tests replace it.

    Raises:
        ValueError: the engine's database is neither SQLite nor PostgreSQL, or `notifications` is given for
            SQLite.
    """

    # -- GPUs ---------------------------------------------------------------------------------------

    def sync_gpus(self, host: str, gpus: Sequence[Gpu], now: datetime) -> None:
        """Record the GPUs `host` has now (by UUID); those no longer present stop being listed.

        Args:
            host: the host that was sampled.
            gpus: every GPU it has now; each must name `host`.
            now: when they were seen.

        Raises:
            ValueError: a GPU names another host, a UUID appears twice, or `now` is naive.
            StoreBusy: the database stayed locked.
        """
        require_aware(now=now)
        if any(gpu.host != host for gpu in gpus):
            raise ValueError(f"every GPU synced for {host!r} must name that host")
        uuids = [gpu.uuid for gpu in gpus]
        if len(set(uuids)) != len(uuids):
            raise ValueError("a GPU UUID appears twice in one sync")
        values = [
            {
                "host": host,
                "uuid": gpu.uuid,
                "index": gpu.index,
                "name": gpu.name,
                "present": True,
                "last_seen_at": now,
                "mig_index": gpu.mig_index,
                "parent_uuid": gpu.parent_uuid,
                "mig_profile": gpu.mig_profile,
            }
            for gpu in gpus
        ]
        with self._writing() as write:
            if gpus:
                # Two syncs of one host may overlap (a restart beside the old process).
                dialect = self._engine.dialect.name
                write.execute(rows.upsert(dialect, tables.gpus, values, ["host", "uuid"], _GPU_COLUMNS_SYNCED))
            write.execute(
                update(tables.gpus)
                .where(tables.gpus.c.host == host, tables.gpus.c.present.is_(True), tables.gpus.c.uuid.not_in(uuids))
                .values(present=False)
            )

    def list_gpus(self, host: str | None = None) -> list[Gpu]:
        """The GPUs present on `host`, ordered by index.

        Args:
            host: the host to list; None for every host's, by host.

        Returns:
            Its present GPUs; GPUs it no longer reports are left out.
        """
        snapshot = self._snapshot()
        if host is None:
            return [gpu for listed in snapshot.gpus.values() for gpu in listed]
        return snapshot.list_gpus(host)

    # -- Claims -------------------------------------------------------------------------------------

    def active_claims(self, host: str | None = None) -> list[Claim]:
        """Active claims (of one host, or all), ordered by host and GPU index.

        Args:
            host: only this host's claims; None for every host.

        Returns:
            The active claims.
        """
        return self._snapshot().active_claims(host)

    def get_claim(self, claim_id: int) -> Claim | None:
        """One claim by id, whatever its status.

        Args:
            claim_id: the claim's id.

        Returns:
            The claim, or None when there is no such claim.
        """
        with self._reading() as connection:
            row = connection.execute(rows.CLAIM_BY_ID, {"claim_id": claim_id}).first()
            return rows.to_claim(row) if row is not None else None

    def create_claims(self, new_claims: Sequence[NewClaim], *, confirm_by_dm: bool = False) -> list[Claim]:
        """Write several claims all or nothing, each with a `claimed` event.

        A MIG card's claim and its slices' claims exclude each other: each claim locks its card's `gpus` row
        (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction excludes every other writer) and only then
        looks for a conflicting active claim, so of two racing writers the second sees the first's claim.

        Args:
            new_claims: the claims to write, each of a different GPU.
            confirm_by_dm: also queue a `claimed` DM to each holder, in the same transaction, so the
                confirmation is delivered (and retried) like every other DM.

        Returns:
            The claims as written (with their ids), in the order given.

        Raises:
            AlreadyHeld: one of the GPUs already has an active claim, itself or through its MIG card or
                slices; nothing was written. It names the holder at the moment of the refusal.
            StoreBusy: the database stayed locked.
            ValueError: two of `new_claims` are for the same GPU, or a time is naive.
        """
        for new in new_claims:
            require_aware(started_at=new.started_at, ends_at=new.ends_at)
        keys = [(new.gpu.host, new.gpu.uuid) for new in new_claims]
        if len(set(keys)) != len(keys):
            raise ValueError("two of the claims are for the same GPU")
        if not new_claims:
            return []
        for _ in range(_CREATE_ATTEMPTS):
            try:
                return self._insert_claims(new_claims, confirm_by_dm)
            except IntegrityError as exc:
                # The partial unique index refused one of them. Everything was rolled back, so name
                # whoever holds that GPU now.
                refusal = self._already_held(new_claims)
                if refusal is not None:
                    raise refusal from exc
                # The holder released in between: the GPU is free again, so try again.
        raise StoreBusy()

    def _insert_claims(self, new_claims: Sequence[NewClaim], confirm_by_dm: bool) -> list[Claim]:
        with self._writing() as write:
            created = []
            for new in new_claims:
                # A slice conflicts with its card's claim; a card with its slices' claims (none for a plain card).
                conflicts = {"conflict_parent_uuid": new.gpu.parent_uuid, "conflict_card_uuid": None}
                if new.gpu.parent_uuid is None:
                    conflicts["conflict_card_uuid"] = new.gpu.uuid
                if write.locks_rows:
                    # Card-vs-slice exclusion is no unique index's business: a lock on the card's row serialises
                    # the writers that could conflict, and the insert's check reads after it (READ COMMITTED sees
                    # the winner's commit). SQLite's write transaction already excludes every other writer.
                    card = new.gpu.parent_uuid if new.gpu.parent_uuid is not None else new.gpu.uuid
                    write.execute(rows.LOCK_CARD, {"host": new.gpu.host, "card_uuid": card})
                written = write.claims(
                    rows.INSERT_CLAIM,
                    {
                        "host": new.gpu.host,
                        "gpu_uuid": new.gpu.uuid,
                        "gpu_index": new.gpu.index,
                        "user_id": new.user_id,
                        "purpose": new.purpose,
                        "started_at": new.started_at,
                        "ends_at": new.ends_at,
                        "status": rows.ACTIVE,
                        "parent_gpu_uuid": new.gpu.parent_uuid,
                        "gpu_mig_index": new.gpu.mig_index,
                        **conflicts,
                    },
                )
                if not written:
                    self._refuse_mig_conflict(write, new, conflicts)
                [claim] = written
                write.execute(
                    rows.INSERT_EVENT, rows.event_values(claim.id, EventKind.CLAIMED, new.user_id, new.started_at)
                )
                if confirm_by_dm:
                    notice = Notice(NoticeKind.CLAIMED, new.user_id, claim.id)
                    write.execute(rows.INSERT_NOTICE, rows.notice_values(notice, new.started_at))
                created.append(claim)
        return created

    def _refuse_mig_conflict(self, write: Write, new: NewClaim, conflicts: dict[str, str | None]) -> NoReturn:
        """The insert found a conflicting claim through MIG: name its holder (the transaction then rolls back)."""
        parameters = {
            "host": new.gpu.host,
            "parent_uuid": conflicts["conflict_parent_uuid"],
            "card_uuid": conflicts["conflict_card_uuid"],
        }
        holder = rows.to_claim(write.execute(rows.MIG_CONFLICT, parameters).one())
        raise AlreadyHeld(new.gpu.label, holder.user_id, holder.ends_at, holder.label)

    def _already_held(self, new_claims: Sequence[NewClaim]) -> AlreadyHeld | None:
        # Read after the refused transaction rolled back, so the holder's commit is in it.
        holders = {(claim.host, claim.gpu_uuid): claim for claim in self._snapshot().active}
        for new in new_claims:
            holder = holders.get((new.gpu.host, new.gpu.uuid))
            if holder is not None:
                return AlreadyHeld(new.gpu.label, holder.user_id, holder.ends_at)
        return None

    def end_claim(
        self,
        claim_id: int,
        status: ClaimStatus,
        event: EventKind,
        actor_id: str | None,
        now: datetime,
        notice: Notice | None = None,
    ) -> Claim:
        """End an active claim (released or expired), with its event and optional DM, in one transaction.

        Args:
            claim_id: the claim to end.
            status: `RELEASED` or `EXPIRED`.
            event: the audit event to record (`released`, `expired` or `force_released`).
            actor_id: who ended it; None when the bot did (expiry).
            now: when it ended.
            notice: a DM to queue in the outbox with the change.

        Returns:
            The claim as it is now.

        Raises:
            ClaimNotActive: the claim had already ended (or never existed); nothing was written.
            StoreBusy: the database stayed locked.
            ValueError: `status` is `ACTIVE`, or `now` is naive.
        """
        if status is ClaimStatus.ACTIVE:
            raise ValueError("a claim cannot be ended into the active status")
        require_aware(now=now)
        with self._writing() as write:
            ended = write.claims(
                rows.END_CLAIM, {"claim_id": claim_id, "new_status": status.value, "at": now, "actor": actor_id}
            )
            if not ended:
                raise ClaimNotActive(claim_id)
            write.execute(rows.INSERT_EVENT, rows.event_values(claim_id, event, actor_id, now))
            if notice is not None:
                write.execute(rows.INSERT_NOTICE, rows.notice_values(notice, now))
            return ended[0]

    def extend_claim(
        self,
        claim_id: int,
        ends_at: datetime,
        actor_id: str,
        now: datetime,
        expected_ends_at: datetime | None = None,
    ) -> Claim:
        """Move an active claim's end to `ends_at` and clear its warning, with an `extended` event.

        Args:
            claim_id: the claim to extend.
            ends_at: its new end.
            actor_id: who extended it.
            now: when.
            expected_ends_at: if given, extend only a claim that still ends then (to the second), so a
                button pressed twice does not extend twice.

        Returns:
            The claim as it is now.

        Raises:
            ClaimNotActive: the claim had already ended (or never existed); nothing was written.
            StoreBusy: the database stayed locked.
            ValueError: a time is naive.
        """
        require_aware(ends_at=ends_at, now=now)
        with self._writing() as write:
            previous = write.execute(rows.ACTIVE_END_FOR_UPDATE, {"claim_id": claim_id}).scalar()
            if previous is None:
                raise ClaimNotActive(claim_id)
            if expected_ends_at is not None and not _same_second(previous, expected_ends_at):
                raise ClaimChanged(claim_id, previous)
            extended = write.claims(rows.EXTEND_CLAIM, {"claim_id": claim_id, "new_ends_at": ends_at})
            if not extended:
                raise ClaimNotActive(claim_id)
            detail = {"from": previous.isoformat(), "to": ends_at.astimezone(timezone.utc).isoformat()}
            write.execute(rows.INSERT_EVENT, rows.event_values(claim_id, EventKind.EXTENDED, actor_id, now, detail))
            return extended[0]

    def claims_to_warn(self, now: datetime, warn_before: timedelta) -> list[Claim]:
        """Active, not yet warned claims that end within `warn_before` of `now` but have not ended.

        Args:
            now: the current time.
            warn_before: how long before its end a claim's holder is warned.

        Returns:
            Those claims, soonest end first: `now < ends_at <= now + warn_before`.
        """
        require_aware(now=now)
        return self._snapshot().claims_to_warn(now, warn_before)

    def mark_warned(self, claim_id: int, now: datetime, notice: Notice) -> bool:
        """Set `warned_at` (only if still active and unwarned) and queue the DM.

        Args:
            claim_id: the claim whose holder is warned.
            now: when.
            notice: the warning DM, queued in the same transaction.

        Returns:
            True when this call warned it; False when it had ended or was already warned (nothing written).

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        require_aware(now=now)
        with self._writing() as write:
            if not write.claims(rows.WARN_CLAIM, {"claim_id": claim_id, "at": now}):
                return False
            write.execute(rows.INSERT_EVENT, rows.event_values(claim_id, EventKind.WARNED, None, now))
            write.execute(rows.INSERT_NOTICE, rows.notice_values(notice, now))
        return True

    def claims_past_end(self, now: datetime) -> list[Claim]:
        """Active claims whose end is at or before `now`.

        Args:
            now: the current time.

        Returns:
            Those claims, earliest end first.
        """
        require_aware(now=now)
        return self._snapshot().claims_past_end(now)


def _same_second(first: datetime, second: datetime) -> bool:
    # Buttons carry times as whole epoch seconds.
    return int(first.timestamp()) == int(second.timestamp())
