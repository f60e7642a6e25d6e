from datetime import datetime, timedelta, timezone

from gpubot.core.history import UtilizationHistory
from gpubot.core.models import GpuSample, HostSample

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def sample(util):
    return HostSample("box", None, (GpuSample(0, "GPU-0", utilization_gpu_pct=util),))


def test_trend_averages_each_bucket_and_marks_gaps():
    history = UtilizationHistory(window=timedelta(minutes=60), buckets=12)
    history.record(sample(10), T0)
    history.record(sample(30), T0 + timedelta(minutes=1))
    history.record(sample(None), T0 + timedelta(minutes=2))  # unknown: skipped
    history.record(sample(90), T0 + timedelta(minutes=10))
    trend = history.trend("GPU-0", T0 + timedelta(minutes=10))
    # Five-minute buckets: 09:00-09:05 averages 10 and 30; nothing in 09:05-09:10; 90 in the current one.
    assert trend == (None,) * 9 + (20.0, None, 90.0)


def test_old_buckets_fall_out():
    history = UtilizationHistory(window=timedelta(minutes=60), buckets=12)
    for minute in range(0, 24 * 60, 1):
        history.record(sample(minute % 100), T0 + timedelta(minutes=minute))
    now = T0 + timedelta(minutes=24 * 60 - 1)
    assert all(value is not None for value in history.trend("GPU-0", now))
    assert history.trend("GPU-0", now)[-1] == sum(m % 100 for m in range(24 * 60 - 5, 24 * 60)) / 5
    assert history.trend("GPU-9", now) == (None,) * 12


def test_a_trend_asked_again_follows_new_samples_and_the_passing_of_time():
    # Trends are remembered between two samples; neither a sample nor a new bucket may be missed.
    history = UtilizationHistory(window=timedelta(minutes=60), buckets=12)
    history.record(sample(10), T0)
    assert history.trend("GPU-0", T0)[-1] == 10.0

    history.record(sample(30), T0 + timedelta(minutes=1))
    assert history.trend("GPU-0", T0 + timedelta(minutes=1))[-1] == 20.0

    later = history.trend("GPU-0", T0 + timedelta(minutes=5))
    assert later[-2:] == (20.0, None)
    # Asking for an earlier bucket again is answered for that time, not from the later one.
    assert history.trend("GPU-0", T0)[-1] == 20.0


def test_seeded_minutes_weigh_as_the_samples_they_hold_and_later_samples_add_to_them():
    from gpubot.core.history import RecentMinute

    history = UtilizationHistory(window=timedelta(hours=1), buckets=12)
    # Two minutes of one five-minute bucket: 60 s at 90 % and 30 s at 30 %, at a 2 s interval: 30 and 15 samples.
    history.seed(
        [RecentMinute("GPU-0", T0, 90.0, 60.0), RecentMinute("GPU-0", T0 + timedelta(minutes=1), 30.0, 30.0)],
        timedelta(seconds=2),
    )
    assert history.trend("GPU-0", T0)[-1] == 70.0  # (90×30 + 30×15) / 45
    history.add("GPU-0", T0 + timedelta(minutes=2), 70.0, weight=45)
    assert history.trend("GPU-0", T0 + timedelta(minutes=2))[-1] == 70.0
    # A minute older than what is kept already is not added out of order.
    history.add("GPU-0", T0 - timedelta(minutes=30), 0.0)
    assert history.trend("GPU-0", T0 + timedelta(minutes=2))[-7] is None
