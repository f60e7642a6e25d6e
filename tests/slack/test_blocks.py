"""Block Kit builders: content, escaping, and Block Kit's limits under worst-case state."""

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block as SdkBlock

from gpubot.core.dashboard import Dashboard, GpuRow, HomeState
from gpubot.core.errors import (
    AlreadyHeld,
    AlreadyYours,
    CommandError,
    GpuNotResponding,
    GpuUnreadable,
    NoFreeGpu,
    NotHolder,
)
from gpubot.core.load import LoadThresholds, gpu_use
from gpubot.core.mig import CudaDevices
from gpubot.core.models import Claim, Gpu, GpuSample, HostSample, Notice, NoticeKind, OutboxItem, ProcessSample
from gpubot.core.policy import ClaimPolicy
from gpubot.core.service import ClaimOutcome, ExtendOutcome, ReleaseOutcome
from gpubot.slack import messages, views
from gpubot.slack.blocks import Message

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
BERLIN = ZoneInfo("Europe/Berlin")
POLICY = ClaimPolicy()
WORST_PURPOSE = "<!channel> & <@U999> " + "x" * 180


def _claim(index=0, user="U1", purpose="fine-tune llama", hours=2):
    return Claim(
        id=index + 1,
        host="box",
        gpu_uuid=f"GPU-{index}",
        gpu_index=index,
        user_id=user,
        purpose=purpose,
        started_at=NOW,
        ends_at=NOW + timedelta(hours=hours),
    )


def _sample(index=0, **overrides):
    values = dict(
        name="NVIDIA H100 80GB HBM3",
        memory_total_mib=81559,
        memory_used_mib=8300,
        utilization_gpu_pct=85,
        temperature_c=72,
        power_draw_w=450.0,
        power_limit_w=700.0,
        processes=(ProcessSample(4242, "python", 8192, "alice"),),
    )
    values.update(overrides)
    return GpuSample(index=index, uuid=f"GPU-{index}", **values)


def _row(gpu, claim, sample):
    """A dashboard row as the service builds it: what the sample says of the GPU's use comes with it."""
    return GpuRow(gpu, claim, sample, gpu_use(sample, LoadThresholds()))


def _dashboard(count, claimed=(), purpose="fine-tune llama", with_samples=False):
    rows = tuple(
        _row(
            Gpu("box", f"GPU-{i}", i, "NVIDIA H100 80GB HBM3"),
            _claim(i, purpose=purpose) if i in claimed else None,
            _sample(i) if with_samples else None,
        )
        for i in range(count)
    )
    return Dashboard(host="box", rows=rows, now=NOW)


def _texts(message):
    return json.dumps(message.blocks, ensure_ascii=False)


def _assert_within_limits(message, max_blocks=50):
    assert len(message.blocks) <= max_blocks
    for block in message.blocks:
        SdkBlock.parse(block).validate_json()  # slack_sdk's own validators as a second check
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150


def test_status_shows_free_and_held_with_mention_date_token_and_time_left():
    message = messages.status_message(_dashboard(3, claimed={1}), POLICY, BERLIN)
    text = _texts(message)
    assert "2 of 3 GPUs free" in text
    assert "<@U1>" in text
    assert f"<!date^{int((NOW + timedelta(hours=2)).timestamp())}^" in text
    assert "|Tue 24 Nov 12:00 CET>" in text  # fallback in the configured zone, naming it
    assert "2h left" in text
    assert "fine-tune llama" in text
    assert "/gpu claim &lt;gpu&gt; &lt;purpose&gt; [duration]" in text
    _assert_within_limits(message)


def test_purpose_is_escaped_so_it_never_pings():
    message = messages.status_message(
        _dashboard(2, claimed={0}, purpose="<!channel> <!here> <@U2> & co"), POLICY, BERLIN
    )
    text = _texts(message)
    assert "<!channel>" not in text and "<!here>" not in text and "<@U2>" not in text
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U2&gt; &amp; co" in text
    assert all(block["text"]["verbatim"] for block in message.blocks if block["type"] == "section")


@pytest.mark.parametrize("count", [1, 8, 47, 48, 64, 256, 1000])
def test_dashboard_compacts_rather_than_overflows(count):
    message = messages.status_message(
        _dashboard(count, claimed=set(range(0, count, 2)), purpose=WORST_PURPOSE), POLICY, BERLIN
    )
    _assert_within_limits(message)
    text = _texts(message)
    assert f"of {count} GPUs free" in text
    if count <= 256:
        assert f"*{count - 1}*" in text or f"GPU {count - 1}*" in text  # every GPU listed while it fits


def test_realtime_shows_every_figure_and_the_processes():
    dashboard = _dashboard(1, claimed={0}, with_samples=True)
    sample = HostSample("box", "550.54.15", (dashboard.rows[0].sample,))
    text = _texts(messages.realtime_message(dashboard, sample, LoadThresholds()))
    for fragment in [
        "🔥",
        "high load",
        "72 °C",
        "85 %",
        "8,300 / 81,559 MiB (10 %)",
        "450 / 700 W",
        "`4242` python",
        "alice",
        "8,192 MiB",
        "driver 550.54.15",
        "held by <@U1>",
    ]:
        assert fragment in text


def test_realtime_unknown_fields_read_na_and_a_lost_gpu_does_not_break_the_listing():
    rows = (
        _row(Gpu("box", "GPU-0", 0, "A"), None, GpuSample(0, "GPU-0", name="A", lost=True)),
        _row(Gpu("box", "GPU-1", 1, "B"), None, GpuSample(1, "GPU-1", name="B")),
        _row(Gpu("box", "GPU-2", 2, "C"), None, _sample(2, utilization_gpu_pct=3, processes=())),
    )
    dashboard = Dashboard("box", rows, NOW)
    sample = HostSample("box", None, tuple(row.sample for row in rows))
    message = messages.realtime_message(dashboard, sample, LoadThresholds())
    text = _texts(message)
    assert "⚠️ *GPU 0*" in text and "lost" in text
    assert "❔ *GPU 1*" in text and "util n/a" in text and "mem n/a" in text and "power n/a" in text
    assert "💤 *GPU 2*" in text and "no processes" in text
    assert "driver n/a" in text
    _assert_within_limits(message)


def test_realtime_before_any_sample():
    assert "No telemetry" in _texts(messages.realtime_message(_dashboard(2), None, LoadThresholds()))


@pytest.mark.parametrize("count", [8, 64, 256])
def test_realtime_keeps_within_limits_with_many_gpus_and_processes(count):
    procs = tuple(ProcessSample(p, "python" * 10, 100, "user" * 8) for p in range(40))
    dashboard = _dashboard(count, with_samples=True)
    rows = tuple(_row(r.gpu, r.claim, _sample(r.gpu.index, processes=procs)) for r in dashboard.rows)
    dashboard = Dashboard("box", rows, NOW)
    message = messages.realtime_message(
        dashboard, HostSample("box", "1", tuple(r.sample for r in rows)), LoadThresholds()
    )
    _assert_within_limits(message)
    assert "…and 35 more processes" in _texts(message) or count > 46


def test_claim_reply_names_gpus_end_and_cuda_line():
    outcome = ClaimOutcome((_claim(0, purpose="<!here>"), _claim(2, purpose="<!here>")))
    text = _texts(messages.claim_message(outcome, NOW, BERLIN))
    assert "GPUs 0,2" in text and "CUDA_VISIBLE_DEVICES=0,2" in text and "<!date^" in text and "(2h)" in text
    assert "&lt;!here&gt;" in text and "<!here>" not in text


def test_release_reply_names_forced_holders():
    outcome = ReleaseOutcome(released=(_claim(0),), forced=(_claim(1, user="U2"),))
    text = _texts(messages.release_message(outcome))
    assert "Released GPU 0." in text and "GPU 1, held by <@U2>" in text


def test_extend_reply_mentions_the_cap():
    outcome = ExtendOutcome(claims=(_claim(0, hours=12),), capped=True, now=NOW)
    text = _texts(messages.extend_message(outcome, POLICY, NOW, BERLIN))
    assert "12h left" in text and "capped" in text


def test_help_lists_every_command_with_an_example():
    text = _texts(messages.help_message(POLICY))
    for command in ["status", "claim", "release", "extend", "realtime", "help"]:
        assert f"/gpu {command}" in text
    assert "e.g." in text


def test_errors_escape_user_text_but_keep_holder_mentions():
    error = CommandError("I don't know `<!channel>`.", usage=("claim",))
    text = _texts(messages.error_message(error))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&lt;gpu&gt;" in text
    held = _texts(messages.error_message(AlreadyHeld("3", "U7", NOW)))
    assert "<@U7>" in held


def test_errors_are_written_from_their_fields_with_slack_hints():
    assert messages.error_text(AlreadyYours("2")) == (
        "You already hold GPU 2; use `/gpu extend 2 &lt;duration&gt;` for more time."
    )
    assert "See `/gpu status`" in messages.error_text(NoFreeGpu(["3"]))
    assert "`/gpu status` shows the GPUs that can" in messages.error_text(GpuNotResponding("1"))
    held = messages.error_message(NotHolder("1", "U7"))
    assert "GPU 1 is claimed by <@U7>, not by you." in _texts(held) and held.text == "That did not work"


def test_claim_form_errors_name_the_holder_in_plain_text():
    errors = views.claim_modal_errors(AlreadyHeld("3", "U7", NOW), {"U7": "<b>ob"})
    assert errors == {"gpus": "GPU 3 is already claimed by &lt;b&gt;ob."}
    assert views.claim_modal_errors(AlreadyHeld("3", "U7", NOW), {}) == {"gpus": "GPU 3 is already claimed by @U7."}


def test_an_error_fallback_text_is_escaped_too():
    # Notifications and screen readers show `text`, which Slack reads as mrkdwn like the blocks.
    message = messages.error_message(CommandError("`<!here>` is not a GPU & never was."))
    assert message.text == "`&lt;!here&gt;` is not a GPU &amp; never was."


def test_claim_form_errors_escape_what_was_typed():
    errors = views.claim_modal_errors(CommandError("`<!channel>` is not a GPU."), {})
    assert errors == {"gpus": "`&lt;!channel&gt;` is not a GPU."}


def test_a_claim_confirmation_dm_is_the_claim_reply_with_its_cuda_line():
    claim = _claim(2, purpose="<!here> llama")
    message = messages.notice_message(OutboxItem(1, Notice(NoticeKind.CLAIMED, "U1", claim.id), claim), BERLIN, NOW)
    _assert_within_limits(message)
    text = _texts(message)
    assert "CUDA_VISIBLE_DEVICES=2" in text and "&lt;!here&gt; llama" in text


def test_force_release_notice_names_the_admin_and_escapes_purpose():
    item = OutboxItem(1, Notice(NoticeKind.FORCE_RELEASED, "U1", 1, "U9"), _claim(0, purpose="<!everyone>"))
    text = _texts(messages.notice_message(item, BERLIN, NOW))
    assert "released by <@U9>" in text and "&lt;!everyone&gt;" in text


def test_a_release_from_the_host_cli_names_the_unix_user_not_a_slack_mention():
    item = OutboxItem(1, Notice(NoticeKind.FORCE_RELEASED, "U1", 1, "host:root"), _claim(0))
    text = _texts(messages.notice_message(item, BERLIN, NOW))
    assert "`root` on the GPU host" in text and "<@host" not in text


def test_expiry_warning_dm_has_extend_and_release_buttons_carrying_the_end():
    claim = _claim(3, hours=0.25)
    message = messages.notice_message(
        OutboxItem(1, Notice(NoticeKind.EXPIRY_WARNING, "U1", claim.id), claim), BERLIN, NOW
    )
    _assert_within_limits(message)
    buttons = message.blocks[-1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Extend +1h", "Extend +2h", "Release now"]
    ends = int(claim.ends_at.timestamp())
    assert buttons[0]["value"] == f"{claim.id}:3600:{ends}" and buttons[2]["value"] == str(claim.id)
    assert len({b["action_id"] for b in buttons}) == 3
    assert "15m left" in _texts(message)


def test_expired_dm_says_the_gpu_is_free():
    claim = _claim(1)
    text = _texts(
        messages.notice_message(OutboxItem(1, Notice(NoticeKind.EXPIRED, "U1", claim.id), claim), BERLIN, NOW)
    )
    assert "GPU 1" in text and "free again" in text


def _home(count, own=(), claimed=(), flash=None):
    dashboard = _dashboard(count, claimed=set(claimed) | set(own), with_samples=True)
    own_claims = tuple(row.claim for row in dashboard.rows if row.gpu.index in own)
    state = HomeState("U1", own_claims, dashboard)
    trends = {row.gpu.uuid: (None, 10.0, 50.0, 100.0) for row in dashboard.rows}
    return views.home_view(state, POLICY, BERLIN, LoadThresholds(), trends, flash)


def test_home_shows_own_claims_with_release_and_extend_then_every_gpu_with_claim_buttons():
    view = _home(4, own=(1,), claimed=(2,))
    text = json.dumps(view, ensure_ascii=False)
    assert view["type"] == "home"
    action_ids = [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "release:2" in action_ids and "extend:2:3600" in action_ids and "extend:2:7200" in action_ids
    assert "extend_choice:2" in action_ids and "open_claim_form" in action_ids
    accessories = [b["accessory"]["action_id"] for b in view["blocks"] if "accessory" in b]
    assert accessories == ["claim_gpu:0", "claim_gpu:3"]  # only free GPUs
    assert "2 of 4 free" in text and "·▁▅█" in text and "<@U1>" in text
    assert len(view["blocks"]) <= 100


def test_home_flash_shows_the_outcome_at_the_top():
    flash = messages.release_message(ReleaseOutcome(released=(_claim(0),), forced=()))
    view = _home(2, flash=flash)
    assert "Released GPU 0." in json.dumps(view["blocks"][:3])


@pytest.mark.parametrize("count", [1, 8, 64, 90, 256])
def test_home_stays_within_100_blocks(count):
    view = _home(count, own=tuple(range(0, min(count, 30))))
    assert len(view["blocks"]) <= 100
    for block in view["blocks"]:
        SdkBlock.parse(block).validate_json()
        assert len(block.get("fields", [])) <= 10
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= 20  # short enough for a phone


def test_claim_modal_offers_free_gpus_preselected_and_bounded_durations():
    modal = views.claim_modal(_dashboard(4, claimed={1}), POLICY, preselect="2")
    gpus, purpose, duration = modal["blocks"]
    assert [o["value"] for o in gpus["element"]["options"]] == ["0", "2", "3"]
    assert gpus["element"]["initial_options"][0]["value"] == "2"
    assert purpose["element"]["max_length"] == 200
    assert [o["text"]["text"] for o in duration["element"]["options"]] == ["30m", "1h", "2h", "4h", "8h", "12h"]
    assert duration["element"]["initial_option"]["value"] == "7200"
    assert modal["callback_id"] == "claim_form" and modal["submit"]


@pytest.mark.parametrize("clicked", ["5", "110", "129"])
def test_claim_modal_keeps_to_the_select_limit_and_always_offers_the_clicked_gpu(clicked):
    modal = views.claim_modal(_dashboard(130, claimed={1}), POLICY, preselect=clicked)

    options = [o["value"] for o in modal["blocks"][0]["element"]["options"]]
    assert len(options) == 100
    assert clicked in options and modal["blocks"][0]["element"]["initial_options"][0]["value"] == clicked
    # In listing order, the clicked one last when it lies past the limit.
    assert options == sorted(options, key=int)
    assert options[:99] == [str(i) for i in range(130) if i != 1][:99]


def test_claim_modal_when_nothing_is_free_has_no_submit():
    modal = views.claim_modal(_dashboard(2, claimed={0, 1}), POLICY, preselect=None)
    assert "submit" not in modal and "Every GPU is claimed" in json.dumps(modal)


def test_modal_errors_land_on_the_right_field():
    from gpubot.core.errors import DurationOutOfBounds, InvalidPurpose

    assert set(views.claim_modal_errors(AlreadyHeld("1", "U7", NOW), {})) == {"gpus"}
    assert set(views.claim_modal_errors(InvalidPurpose("empty"), {})) == {"purpose"}
    assert set(views.claim_modal_errors(DurationOutOfBounds("too long"), {})) == {"duration"}


def test_modal_errors_name_the_holder_where_a_mention_cannot_render():
    # Issue 11, point 13: field errors are plain text, where <@U7> shows raw.
    named = views.claim_modal_errors(AlreadyHeld("1", "U7", NOW), {"U7": "Bob"})["gpus"]
    assert named == "GPU 1 is already claimed by Bob."
    unknown = views.claim_modal_errors(AlreadyHeld("1", "U7", NOW), {})["gpus"]
    assert unknown == "GPU 1 is already claimed by @U7."


def test_sparkline():
    assert views.sparkline((0, 50, 100, None)) == "▁▅█·"


# --- a GPU that is busy is not "free" (issue 11, point 14) ---------------------------------------------


def _mixed_dashboard():
    """GPU 0 idle, 1 running alice's unclaimed job, 2 not responding, 3 claimed."""
    gpu = [Gpu("box", f"GPU-{i}", i, "H100") for i in range(4)]
    rows = (
        _row(gpu[0], None, _sample(0, utilization_gpu_pct=0, processes=())),
        _row(gpu[1], None, _sample(1, utilization_gpu_pct=95)),
        _row(gpu[2], None, GpuSample(2, "GPU-2", lost=True)),
        _row(gpu[3], _claim(3), _sample(3)),
    )
    return Dashboard("box", rows, NOW)


@pytest.mark.parametrize("compact", [False, True])
def test_status_says_free_but_in_use_and_not_responding_instead_of_free(compact, monkeypatch):
    if compact:
        monkeypatch.setattr(messages, "MAX_MESSAGE_BLOCKS", 7)  # 3 blocks for 4 GPUs: compact lines
    text = _texts(messages.status_message(_mixed_dashboard(), POLICY, BERLIN))
    assert "3 of 4 GPUs free* (1 in use without a claim, 1 not responding)" in text
    gpu = "*" if compact else "*GPU "
    assert f"🟢 {gpu}0*" in text
    assert f"🟡 {gpu}1*" in text and "*free, but in use* by alice's process python (pid 4242)" in text
    assert f"⚠️ {gpu}2*" in text and "*not responding*" in text
    assert "🟢" not in text.split(f"🟢 {gpu}0*")[1]  # only the idle GPU is plainly free


def test_home_offers_no_claim_button_on_a_gpu_that_is_not_responding():
    state = HomeState("U9", (), _mixed_dashboard())
    view = views.home_view(state, POLICY, BERLIN, LoadThresholds(), {}, None)
    accessories = [b["accessory"]["action_id"] for b in view["blocks"] if "accessory" in b]
    assert accessories == ["claim_gpu:0", "claim_gpu:1"]
    text = json.dumps(view, ensure_ascii=False)
    assert "3 of 4 free (1 in use without a claim, 1 not responding)" in text and "free, but in use" in text


def test_realtime_says_an_unclaimed_busy_gpu_is_free_but_in_use():
    dashboard = _mixed_dashboard()
    sample = HostSample("box", "1", tuple(row.sample for row in dashboard.rows))
    lines = [b["text"]["text"] for b in messages.realtime_message(dashboard, sample, LoadThresholds()).blocks[2:]]
    assert "· *free*" in lines[0]
    assert "*free, but in use* by alice's process python (pid 4242)" in lines[1]
    assert "held by <@U1>" in lines[3]


def test_claim_reply_carries_the_in_use_warning_escaped():
    outcome = ClaimOutcome((_claim(1),), warnings=("GPU 1 is in use by <!here>'s process python (pid 4242)",))
    message = messages.claim_message(outcome, NOW, BERLIN)
    assert len(message.blocks) == 2
    warning = message.blocks[1]["text"]["text"]
    assert warning.startswith("⚠️ GPU 1 is in use by &lt;!here&gt;'s process")
    no_warning = messages.claim_message(ClaimOutcome((_claim(1),)), NOW, BERLIN)
    assert len(no_warning.blocks) == 1


def test_claim_modal_leaves_out_gpus_that_are_not_responding_and_labels_busy_ones():
    modal = views.claim_modal(_mixed_dashboard(), POLICY, preselect="2")
    gpus = modal["blocks"][0]["element"]
    assert [o["value"] for o in gpus["options"]] == ["0", "1"]
    assert gpus["options"][1]["text"]["text"].startswith("GPU 1 · H100 · in use by alice's process python")
    assert "initial_options" not in gpus  # the clicked GPU stopped answering meanwhile
    assert "GPU 2 is not responding, so it cannot be claimed" in json.dumps(modal, ensure_ascii=False)
    SdkBlock.parse(modal["blocks"][1]).validate_json()


def test_claim_modal_when_only_unresponsive_gpus_are_unclaimed():
    rows = (_row(Gpu("box", "GPU-0", 0, "A"), None, GpuSample(0, "GPU-0", lost=True)),)
    modal = views.claim_modal(Dashboard("box", rows, NOW), POLICY, preselect=None)
    assert "submit" not in modal and "GPU 0 is not responding" in json.dumps(modal)


def test_a_claim_refused_for_a_gpu_not_responding_lands_on_the_gpus_field():
    from gpubot.core.errors import GpuNotResponding

    errors = views.claim_modal_errors(GpuNotResponding("2"), {})
    assert set(errors) == {"gpus"} and "GPU 2 is not responding" in errors["gpus"]


# -- MIG slices ---------------------------------------------------------------------------------------------


def _mig_dashboard(cards, slices_per_card, claimed=(), covered=()):
    """`cards` A100s in MIG mode, each followed by its slices; `claimed` labels hold claims of their own."""
    rows = []
    claim_id = 0
    for card in range(cards):
        gpus = [Gpu("box", f"GPU-{card}", card, "NVIDIA A100-SXM4-80GB")]
        gpus += [
            Gpu("box", f"MIG-{card}-{s}", card, "NVIDIA A100-SXM4-80GB", s, f"GPU-{card}", "1g.10gb")
            for s in range(slices_per_card)
        ]
        for gpu in gpus:
            sample = GpuSample(
                card,
                gpu.uuid,
                name=gpu.name,
                memory_total_mib=9984,
                memory_used_mib=4000,
                mig_enabled=not gpu.is_slice,
                mig_index=gpu.mig_index,
                parent_uuid=gpu.parent_uuid,
                mig_profile=gpu.mig_profile,
                processes=(ProcessSample(4242, "python", 4000, "alice"),) if gpu.label in claimed else (),
            )
            claim = None
            if gpu.label in claimed:
                claim_id += 1
                claim = Claim(
                    claim_id,
                    "box",
                    gpu.uuid,
                    card,
                    "U1",
                    WORST_PURPOSE,
                    NOW,
                    NOW + timedelta(hours=2),
                    gpu_mig_index=gpu.mig_index,
                    parent_gpu_uuid=gpu.parent_uuid,
                )
            covering = covered.get(gpu.label) if isinstance(covered, dict) else None
            rows.append(GpuRow(gpu, claim, sample, gpu_use(sample, LoadThresholds()), covering))
    return Dashboard("box", tuple(rows), NOW)


def test_status_lists_each_slice_under_its_card_with_its_profile():
    held = Claim(
        1, "box", "MIG-0-1", 0, "U1", "train", NOW, NOW + timedelta(hours=2), gpu_mig_index=1, parent_gpu_uuid="GPU-0"
    )
    dashboard = _mig_dashboard(1, 3, claimed={"0.1"}, covered={"0": held})
    text = _texts(messages.status_message(dashboard, POLICY, BERLIN))
    assert "*GPU 0* · NVIDIA A100-SXM4-80GB — slice 0.1 held by <@U1>" in text
    assert "↳ 🔴 *GPU 0.1* · MIG 1g.10gb — <@U1>" in text
    assert "↳ 🟢 *GPU 0.2* · MIG 1g.10gb — *free*" in text
    # The card held through its slice is not free.
    assert "2 of 4 GPUs free" in text


def test_realtime_shows_slices_with_memory_and_processes_and_utilization_na():
    dashboard = _mig_dashboard(1, 2, claimed={"0.1"})
    sample = HostSample("box", "550", tuple(row.sample for row in dashboard.rows))
    text = _texts(messages.realtime_message(dashboard, sample, LoadThresholds()))
    assert "*GPU 0.1* · MIG 1g.10gb" in text
    assert "util n/a · mem 4,000 / 9,984 MiB (40 %)" in text
    assert "`4242` python · alice · 4,000 MiB" in text


def test_unknown_processes_and_unreadable_gpus_are_shown_with_their_reasons():
    unknown = _sample(0, processes=(), utilization_gpu_pct=0, processes_unknown="no permission")
    unreadable = GpuSample(1, "GPU-1", unreadable="no permission")
    rows = (
        _row(Gpu("box", "GPU-0", 0, "H100"), None, unknown),
        _row(Gpu("box", "GPU-1", 1, "H100"), None, unreadable),
    )
    dashboard = Dashboard("box", rows, NOW)
    status = _texts(messages.status_message(dashboard, POLICY, BERLIN))
    assert "🟡 *GPU 0* · H100 — *free, processes n/a* (no permission)" in status
    assert "⚠️ *GPU 1* · H100 — *unreadable* (no permission)" in status
    assert "(1 unreadable)" in status
    realtime = _texts(
        messages.realtime_message(dashboard, HostSample("box", None, (unknown, unreadable)), LoadThresholds())
    )
    assert "processes n/a (no permission)" in realtime and "unreadable (no permission)" in realtime
    modal = views.claim_modal(dashboard, POLICY, preselect=None)
    assert [o["value"] for o in modal["blocks"][0]["element"]["options"]] == ["0"]
    assert "GPU 1 is unreadable, so it cannot be claimed" in _texts(Message("", modal["blocks"]))


def test_claim_form_offers_slices_with_their_profile_and_home_buttons_carry_labels():
    dashboard = _mig_dashboard(1, 2)
    modal = views.claim_modal(dashboard, POLICY, preselect="0.1")
    options = modal["blocks"][0]["element"]["options"]
    assert [(o["value"], o["text"]["text"]) for o in options] == [
        ("0", "GPU 0 · NVIDIA A100-SXM4-80GB"),
        ("0.0", "GPU 0.0 · MIG 1g.10gb"),
        ("0.1", "GPU 0.1 · MIG 1g.10gb"),
    ]
    assert modal["blocks"][0]["element"]["initial_options"][0]["value"] == "0.1"
    home = views.home_view(HomeState("U2", (), dashboard), POLICY, BERLIN, LoadThresholds(), {})
    buttons = [b["accessory"] for b in home["blocks"] if "accessory" in b]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("claim_gpu:0", "0"),
        ("claim_gpu:0.0", "0.0"),
        ("claim_gpu:0.1", "0.1"),
    ]


def test_a_64_gpu_host_of_8_slice_cards_fits_every_surface():
    dashboard = _mig_dashboard(64, 8, claimed={f"{c}.{s}" for c in range(64) for s in range(0, 8, 2)})
    _assert_within_limits(messages.status_message(dashboard, POLICY, BERLIN))
    sample = HostSample("box", "550", tuple(row.sample for row in dashboard.rows))
    _assert_within_limits(messages.realtime_message(dashboard, sample, LoadThresholds()))
    own = tuple(row.claim for row in dashboard.rows if row.claim is not None)
    home = views.home_view(HomeState("U1", own, dashboard), POLICY, BERLIN, LoadThresholds(), {})
    assert len(home["blocks"]) <= 100
    modal = views.claim_modal(dashboard, POLICY, preselect="63.7")
    options = modal["blocks"][0]["element"]["options"]
    assert len(options) <= 100 and "63.7" in {o["value"] for o in options}


def test_claim_reply_hands_back_mig_uuids_and_notes_whole_mig_cards():
    slice_claim = Claim(
        1, "box", "MIG-abc", 0, "U1", "train", NOW, NOW + timedelta(hours=2), gpu_mig_index=2, parent_gpu_uuid="GPU-0"
    )
    text = _texts(messages.claim_message(ClaimOutcome((slice_claim,)), NOW, BERLIN))
    assert "You have *GPU 0.2*" in text and "`CUDA_VISIBLE_DEVICES=MIG-abc`" in text and "PCI_BUS_ID" not in text
    card_claim = _claim(1)
    outcome = ClaimOutcome((card_claim,), devices=CudaDevices("MIG-a,MIG-b", by_uuid=True, whole_mig_cards=("1",)))
    text = _texts(messages.claim_message(outcome, NOW, BERLIN))
    assert "`CUDA_VISIBLE_DEVICES=MIG-a,MIG-b`" in text and "a CUDA process uses one MIG device" in text


def test_card_slice_refusals_name_both():
    text = messages.error_text(AlreadyHeld("0.2", "U7", NOW, "0"))
    assert text == "GPU 0.2 is taken: GPU 0 is claimed by <@U7>."
    assert "cannot be read (no permission)" in messages.error_text(GpuUnreadable("1", "no permission"))
