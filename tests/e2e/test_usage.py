"""`/gpu usage` end to end: the real daemon counts its fake GPUs' samples into a SQLite file and reports them."""

from __future__ import annotations

import json
import re
import sqlite3
import time

from .conftest import reply_text, start_daemon


def counted_seconds(state, claim_gpu: str) -> float:
    with sqlite3.connect(state / "gpubot.db") as connection:
        row = connection.execute(
            "SELECT u.observed_s FROM claim_usage u JOIN claims c ON c.id = u.claim_id WHERE c.gpu_uuid = ?",
            (claim_gpu,),
        ).fetchone()
    return 0.0 if row is None else row[0]


def test_usage_counts_a_claim_while_it_runs_and_reports_it_to_its_holder_and_the_team(slack, tmp_path):
    daemon = start_daemon(slack, tmp_path)
    try:
        claimed = reply_text(slack.command("claim 0 train llama 2h", user_id="U0ALICE"))
        assert "You have *GPU 0*" in claimed
        deadline = time.monotonic() + 20
        while counted_seconds(tmp_path, "GPU-0000") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert counted_seconds(tmp_path, "GPU-0000") >= 3

        mine = reply_text(slack.command("usage", user_id="U0ALICE"))
        assert "GPU usage: you, last 7 days" in mine
        # GPU 0 of the fake host runs at 85 % with a process on it: every second observed was busy.
        assert "*1 claim*" in mine and "(100%)" in mine and "idle while held 0 GPU-h" in mine
        assert "<@U0ALICE>" not in mine

        team = reply_text(slack.command("usage team 30d", user_id="U0BOB"))
        assert "GPU usage: the team, last 30 days" in team and "<@U0ALICE>" in team and "train llama" in team

        nobody = reply_text(slack.command("usage box-9", user_id="U0BOB"))
        assert "No host or GPU model is called" in nobody and "gpu-box-1" in nobody
        assert "usage" in reply_text(slack.command("help", user_id="U0BOB"))

        slack.open_home("U0ALICE")
        home = slack.wait_for_call("views.publish", lambda call: call.params.get("user_id") == "U0ALICE")
        shown = json.dumps(home.params["view"], ensure_ascii=False)
        assert "📊 Your last 7 days: held" in shown and "— the team: held" in shown, shown

        released = reply_text(slack.command("release 0", user_id="U0ALICE"))
        assert re.search(
            r"🧾 held \d+s · busy \d+s \(100%\) · average utilization 85% · peak memory 8 GiB", released
        ), released
    finally:
        code, _ = daemon.stop()
        assert code == 0, daemon.log()


def test_two_daemons_post_the_due_weekly_digest_once_with_its_chart(tmp_path):
    from datetime import datetime, timezone

    from gpubot.standin import SlackStandin

    today = datetime.now(timezone.utc).strftime("%a").lower()
    digest = {"GPUBOT_DIGEST_CHANNEL": "C0DIGEST", "GPUBOT_DIGEST_AT": f"{today} 00:00", "GPUBOT_TIMEZONE": "UTC"}
    with SlackStandin() as slack:
        daemons = []
        try:
            for name in ("gpu-box-1", "gpu-box-2"):
                state = tmp_path / name
                state.mkdir()
                database = f"sqlite:///{tmp_path / 'gpubot.db'}"
                daemons.append(
                    start_daemon(slack, state, GPUBOT_HOST_NAME=name, GPUBOT_DATABASE_URL=database, **digest)
                )
            slack.wait_live(2, timeout=30)
            posted = slack.wait_for_call(
                "chat.postMessage", lambda call: call.params.get("channel") == "C0DIGEST", timeout=60
            )
            time.sleep(3)  # both are up, so both have checked by now (each checks once connected, then each minute)
            to_channel = [c for c in slack.calls("chat.postMessage") if c.params.get("channel") == "C0DIGEST"]
            assert len(to_channel) == 1
            [image] = [block for block in posted.params["blocks"] if block["type"] == "image"]
            chart = slack.uploaded(image["slack_file"]["id"])
            assert chart is not None and chart.data is not None and chart.data.startswith(b"\x89PNG")
            assert len(slack.calls("files.completeUploadExternal")) == 1
        finally:
            for daemon in daemons:
                assert daemon.stop()[0] == 0, daemon.log()
