"""What a sample adds to the usage record: the span it stands for, busy and idle, gaps, claims, MIG cards."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gpubot.core.models import Claim, GpuSample, HostSample, ProcessSample, Tally
from gpubot.core.usage import UsageRule, add, count_sample, sample_span

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
RULE = UsageRule(interval=timedelta(seconds=2), active_pct=10)


def host(*gpus: GpuSample) -> HostSample:
    return HostSample("box", "580.1", tuple(gpus))


def claim(claim_id: int, uuid: str, started_at: datetime = T0 - timedelta(hours=1), ended_at=None) -> Claim:
    return Claim(claim_id, "box", uuid, 0, "U0ALICE", "train", started_at, T0 + timedelta(hours=1), ended_at=ended_at)


def test_a_sample_stands_for_the_time_since_the_last_up_to_twice_the_interval():
    assert sample_span(None, T0, RULE) == timedelta(seconds=2)
    assert sample_span(T0 - timedelta(seconds=3), T0, RULE) == timedelta(seconds=3)
    assert sample_span(T0 - timedelta(seconds=4), T0, RULE) == timedelta(seconds=4)
    # A longer gap (host offline, daemon killed) is not observed: the sample stands for one interval.
    assert sample_span(T0 - timedelta(minutes=5), T0, RULE) == timedelta(seconds=2)


def test_busy_is_utilization_at_the_threshold_or_any_process_and_unreadable_is_not_observed():
    sample = host(
        GpuSample(0, "GPU-busy", utilization_gpu_pct=10, memory_used_mib=100),
        GpuSample(1, "GPU-idle", utilization_gpu_pct=9),
        GpuSample(2, "GPU-proc", utilization_gpu_pct=0, processes=(ProcessSample(7, "python", 10, "bob"),)),
        GpuSample(3, "GPU-lost", lost=True),
        GpuSample(4, "GPU-unknown", processes_unknown="no permission"),
        GpuSample(5, "GPU-nopct", utilization_gpu_pct=None),
    )
    usage = count_sample(sample, T0 - timedelta(seconds=2), T0, [], RULE)
    tallies = {gpu.uuid: gpu.tally for gpu in usage.gpus}

    assert tallies["GPU-busy"] == Tally(2.0, 2.0, 20.0, 2.0, 10, 100)
    assert tallies["GPU-idle"] == Tally(2.0, 0.0, 18.0, 2.0, 9, None)
    assert tallies["GPU-proc"].busy_s == 2.0
    # Processes known (none) but utilization not: observed and idle, with no utilization to average.
    assert tallies["GPU-nopct"] == Tally(2.0, 0.0, 0.0, 0.0, None, None)
    assert "GPU-lost" not in tallies and "GPU-unknown" not in tallies


def test_a_claim_counts_its_own_gpu_only_from_its_start_with_the_users_seen():
    sample = host(
        GpuSample(0, "GPU-0", utilization_gpu_pct=80, processes=(ProcessSample(1, "python", 10, "alice"),)),
        GpuSample(1, "GPU-1", utilization_gpu_pct=0),
    )
    fresh = claim(1, "GPU-0", started_at=T0 - timedelta(seconds=0.5))
    idle = claim(2, "GPU-1")
    ended = claim(3, "GPU-1", ended_at=T0 - timedelta(seconds=1.5))
    usage = count_sample(sample, T0 - timedelta(seconds=2), T0, [fresh, idle, ended], RULE)
    by_id = {c.claim_id: c for c in usage.claims}

    assert by_id[1].tally == Tally(0.5, 0.5, 40.0, 0.5, 80, None)
    assert by_id[1].users == frozenset({"alice"})
    assert by_id[2].tally.observed_s == 2.0 and by_id[2].tally.busy_s == 0.0
    assert by_id[3].tally.observed_s == 0.5


def test_a_whole_mig_card_claim_counts_its_slices_once():
    card = GpuSample(0, "GPU-card", mig_enabled=True, utilization_gpu_pct=None, memory_used_mib=20_000)
    slice_a = GpuSample(0, "MIG-a", mig_index=0, parent_uuid="GPU-card", memory_used_mib=5000)
    slice_b = GpuSample(
        0, "MIG-b", mig_index=1, parent_uuid="GPU-card", processes=(ProcessSample(9, "train", 100, "carol"),)
    )
    usage = count_sample(host(card, slice_a, slice_b), T0 - timedelta(seconds=2), T0, [claim(1, "GPU-card")], RULE)
    [counted] = usage.claims

    assert counted.tally.observed_s == 2.0 and counted.tally.busy_s == 2.0
    assert counted.tally.memory_peak_mib == 20_000
    assert counted.users == frozenset({"carol"})


def test_tallies_add_seconds_and_keep_the_higher_peaks():
    total = add(Tally(2, 1, 50, 2, 40, None), Tally(3, 3, 270, 3, 90, 512))
    assert total == Tally(5, 4, 320, 5, 90, 512)
    assert total.utilization_avg == 64.0
    assert Tally().utilization_avg is None


def test_a_receipt_reads_held_busy_average_and_peak_and_says_what_was_not_seen():
    from gpubot.core.models import ClaimUsage
    from gpubot.core.usage import receipt

    usage = ClaimUsage(1, Tally(3 * 3600, 2.5 * 3600, 71 * 3 * 3600, 3 * 3600, 99, 63_488), frozenset({"alice"}))
    made = receipt(timedelta(hours=3, minutes=10), usage)
    assert made.line == (
        "held 3h 10m · busy 2h 30m (83%) · average utilization 71% · peak memory 62 GiB · not observed 10m"
    )
    assert not made.mostly_idle

    idle = receipt(timedelta(hours=1), ClaimUsage(1, Tally(3600, 600, 0, 3600, 3, 512), frozenset()))
    assert idle.line == "held 1h · busy 10m (17%) · average utilization 0% · peak memory 512 MiB"
    assert idle.mostly_idle
    # Too little seen to judge, or never observed at all: no nudge, and no figures made up.
    assert not receipt(timedelta(minutes=5), ClaimUsage(1, Tally(300, 0, 0, 300), frozenset())).mostly_idle
    assert receipt(timedelta(hours=1), None).line == "held 1h · not observed 1h"
