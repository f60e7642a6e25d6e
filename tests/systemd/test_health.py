"""Health: named heartbeats and the Slack connection, judged at an injected time."""

from __future__ import annotations

import pytest

from gpubot.daemon.health import Health


def test_fresh_heartbeats_and_a_connection_are_healthy():
    health = Health()
    health.expect("telemetry", 60, now_s=1000)
    health.expect("scheduler", 30, now_s=1000)
    health.connection(True, 1000)
    health.beat("telemetry", 1050)
    health.beat("scheduler", 1025)

    assert health.healthy(1055)
    assert health.problems(1055) == []


def test_a_silent_heartbeat_makes_it_unhealthy_until_it_beats_again():
    health = Health()
    health.expect("scheduler", 30, now_s=0)
    health.beat("scheduler", 10)

    assert health.healthy(40)
    assert not health.healthy(41)
    assert health.problems(41) == ["scheduler silent for 31 s"]
    health.beat("scheduler", 41)
    assert health.healthy(41)


def test_a_heartbeat_that_never_beat_gets_its_max_age_from_when_it_was_declared():
    health = Health()
    health.expect("telemetry", 60, now_s=100)

    assert health.healthy(160)
    assert health.problems(161) == ["telemetry has not run for 61 s"]


def test_reconnecting_is_healthy_only_within_the_grace():
    health = Health(reconnect_grace_s=180)
    health.connection(True, 0)
    health.connection(False, 100)
    health.connection(False, 200)  # still the same outage: it started at 100

    assert health.reconnecting_for_s(250) == 150
    assert health.healthy(280)
    assert health.problems(281) == ["Slack disconnected for 181 s"]
    health.connection(True, 290)
    assert health.healthy(290) and health.reconnecting_for_s(290) is None


def test_an_old_beat_never_moves_a_heartbeat_back():
    health = Health()
    health.expect("telemetry", 10, now_s=0)
    health.beat("telemetry", 20)
    health.beat("telemetry", 5)  # a slow thread reporting late
    assert health.healthy(30)


def test_beating_an_undeclared_heartbeat_is_an_error():
    health = Health()
    with pytest.raises(KeyError, match="schedular"):
        health.beat("schedular", 0)


def test_max_age_must_be_positive():
    with pytest.raises(ValueError):
        Health().expect("telemetry", 0, now_s=0)
