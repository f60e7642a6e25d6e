"""The stand-in's Web API and response URLs, driven by slack_sdk's real sync clients."""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from gpubot.standin import RESPONSE_URL_METHOD, SlackStandin, StandinTimeoutError
from gpubot.standin import payloads as p
from tests.standin.conftest import missing_keys, recorded

# Views as an app sends them: the app-set parts of recorded views.publish/views.open answers.
_APP_SET = ("type", "blocks", "callback_id", "private_metadata", "title", "submit", "close")
HOME_VIEW = {k: v for k, v in recorded("views_publish_success.json")["view"].items() if k in _APP_SET and v}
MODAL_VIEW = {k: v for k, v in recorded("views_open_success.json")["view"].items() if k in _APP_SET and v}

# Each method with valid arguments, and the recorded Slack response its answer must cover.
METHOD_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "chat_postMessage",
        {"channel": "C0GPULAB", "text": "hi", "attachments": [{"text": "a", "fallback": "a"}]},
        "chat_postMessage_success_docs.json",
    ),
    (
        "chat_postEphemeral",
        {"channel": "C0GPULAB", "user": "U0ALICE", "text": "hi"},
        "chat_postEphemeral_success_docs.json",
    ),
    ("views_publish", {"user_id": "U0ALICE", "view": HOME_VIEW}, "views_publish_success.json"),
    ("views_open", {"trigger_id": "1000.U0ALICE.command", "view": MODAL_VIEW}, "views_open_success.json"),
    ("conversations_open", {"users": "U0ALICE"}, "conversations_open_success_docs.json"),
    ("users_info", {"user": "U0ALICE"}, "users_info_success.json"),
]


@pytest.fixture
def web(slack: SlackStandin) -> WebClient:
    return WebClient(base_url=slack.api_url, token=slack.bot_token)


@pytest.mark.parametrize(("method", "kwargs", "fixture"), METHOD_CASES, ids=[c[0] for c in METHOD_CASES])
def test_methods_answer_in_slacks_shape(web: WebClient, method: str, kwargs: dict[str, Any], fixture: str) -> None:
    response = getattr(web, method)(**kwargs)

    assert response["ok"] is True
    assert missing_keys(recorded(fixture), response.data) == set()


def test_auth_test_names_the_bot_and_lists_scopes_in_a_header(slack: SlackStandin, web: WebClient) -> None:
    response = web.auth_test()

    assert (response["user_id"], response["bot_id"], response["team_id"]) == (p.BOT_USER_ID, p.BOT_ID, p.TEAM_ID)
    assert response["team"] and response["url"]
    scopes = response.headers["x-oauth-scopes"]
    assert set(scopes.split(",")) == {"commands", "chat:write", "im:write", "im:history", "users:read", "files:write"}


def test_post_message_gives_unique_increasing_ts_and_dm_channel_for_a_user(web: WebClient) -> None:
    first = web.chat_postMessage(channel="U0BOB", text="one")
    second = web.chat_postMessage(channel="C0GPULAB", text="two")

    assert first["channel"] == "DU0BOB"
    assert first["message"]["text"] == "one"
    assert float(first["ts"]) < float(second["ts"])


def test_conversations_open_gives_a_stable_dm_per_user(web: WebClient) -> None:
    ids = {web.conversations_open(users="U0BOB")["channel"]["id"] for _ in range(2)}

    assert ids == {"DU0BOB"}


def test_views_get_ids_and_keep_what_the_app_sent(web: WebClient) -> None:
    view = web.views_open(trigger_id="1000.U0ALICE.command", view=MODAL_VIEW)["view"]

    assert view["id"].startswith("V")
    assert (view["callback_id"], view["private_metadata"]) == (
        MODAL_VIEW["callback_id"],
        MODAL_VIEW["private_metadata"],
    )
    assert view["blocks"] == MODAL_VIEW["blocks"]


# slack_sdk warns before sending a message without text; sending one is the point here.
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.parametrize(
    ("method", "kwargs", "error"),
    [
        ("chat_postMessage", {"channel": "C0GPULAB"}, "no_text"),
        ("views_publish", {"user_id": "U0ALICE", "view": MODAL_VIEW}, "invalid_arguments"),
        ("users_info", {"user": "nobody"}, "user_not_found"),
    ],
)
def test_bad_arguments_fail_like_slack(web: WebClient, method: str, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        getattr(web, method)(**kwargs)

    assert raised.value.response["error"] == error


def test_a_wrong_bot_token_is_invalid_auth(slack: SlackStandin) -> None:
    with pytest.raises(SlackApiError) as raised:
        WebClient(base_url=slack.api_url, token="xoxb-wrong").chat_postMessage(channel="C0GPULAB", text="hi")

    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == "invalid_auth"


def test_a_missing_scope_is_reported() -> None:
    with SlackStandin(scopes={"commands", "chat:write"}) as narrow:
        client = WebClient(base_url=narrow.api_url, token=narrow.bot_token)
        with pytest.raises(SlackApiError) as raised:
            client.users_info(user="U0ALICE")

    assert raised.value.response["error"] == "missing_scope"
    assert raised.value.response["needed"] == "users:read"


def test_with_the_home_tab_off_publishing_a_home_view_is_not_enabled() -> None:
    with SlackStandin(home_tab=False) as no_home:
        client = WebClient(base_url=no_home.api_url, token=no_home.bot_token)
        with pytest.raises(SlackApiError) as raised:
            client.views_publish(user_id="U0ALICE", view=HOME_VIEW)
        opened = client.views_open(trigger_id="1000.U0ALICE.command", view=MODAL_VIEW)  # modals still work

    assert raised.value.response["error"] == "not_enabled"
    assert opened["ok"] is True


def test_connections_open_needs_the_app_token(slack: SlackStandin, web: WebClient) -> None:
    response = web.apps_connections_open(app_token=slack.app_token)
    assert missing_keys(recorded("apps_connections_open_response_docs.json"), response.data) == set()
    assert response["url"].startswith(slack.api_url.replace("http://", "ws://").replace("/api/", "/socket?ticket="))

    with pytest.raises(SlackApiError) as raised:
        web.apps_connections_open(app_token=slack.bot_token)
    assert raised.value.response["error"] == "not_allowed_token_type"


def test_unknown_methods_are_unknown(web: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        web.api_call("chat.scheduleMessage", json={"channel": "C0GPULAB", "text": "later", "post_at": 1})

    assert raised.value.response["error"] == "unknown_method"


def test_form_bodies_with_a_token_field_are_decoded_and_recorded(slack: SlackStandin) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*GPU 0*"}}]
    form = {"token": slack.bot_token, "channel": "C0GPULAB", "blocks": json.dumps(blocks)}
    request = urllib.request.Request(slack.api_url + "chat.postMessage", data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert json.load(reply)["ok"] is True

    (call,) = slack.calls("chat.postMessage")
    assert call.params == {"channel": "C0GPULAB", "blocks": blocks}
    assert call.token == slack.bot_token
    assert call.path == "/api/chat.postMessage"
    assert call.http_status == 200 and call.response["ok"] is True


def test_every_call_is_recorded_with_its_token_in_order(slack: SlackStandin, web: WebClient) -> None:
    web.auth_test()
    web.views_publish(user_id="U0ALICE", view=HOME_VIEW)

    assert [c.method for c in slack.calls()] == ["auth.test", "views.publish"]
    (publish,) = slack.calls("views.publish")
    assert publish.params["view"] == HOME_VIEW
    assert publish.token == slack.bot_token
    slack.clear_calls()
    assert slack.calls() == []


def test_rate_limit_injection_is_a_429_with_retry_after(slack: SlackStandin, web: WebClient) -> None:
    slack.rate_limit_next("chat.postMessage", retry_after_s=7)

    with pytest.raises(SlackApiError) as raised:
        web.chat_postMessage(channel="C0GPULAB", text="hi")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"
    assert web.chat_postMessage(channel="C0GPULAB", text="hi")["ok"] is True


def test_error_injection_fails_the_next_n_calls_only(slack: SlackStandin, web: WebClient) -> None:
    slack.fail_next("views.publish", "internal_error", times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            web.views_publish(user_id="U0ALICE", view=HOME_VIEW)
        assert raised.value.response["error"] == "internal_error"
    assert web.views_publish(user_id="U0ALICE", view=HOME_VIEW)["ok"] is True


def test_an_outage_answers_503_until_cleared(slack: SlackStandin, web: WebClient) -> None:
    slack.start_outage()
    with pytest.raises(SlackApiError) as raised:
        web.auth_test()
    assert raised.value.response.status_code == 503

    slack.clear_faults()
    assert web.auth_test()["ok"] is True


def test_response_url_posts_are_recorded(slack: SlackStandin) -> None:
    url = slack.new_response_url()

    reply = WebhookClient(url).send(text="GPU 0 is yours", response_type="ephemeral")

    assert (reply.status_code, reply.body) == (200, "ok")
    call = slack.wait_for_call(RESPONSE_URL_METHOD)
    assert call.params == {"text": "GPU 0 is yours", "response_type": "ephemeral"}
    assert url.endswith(call.path)


def test_response_url_faults_are_http_errors(slack: SlackStandin) -> None:
    slack.fail_next(RESPONSE_URL_METHOD, "expired_url")

    reply = WebhookClient(slack.new_response_url()).send(text="too late")

    assert (reply.status_code, reply.body) == (400, "expired_url")


def test_wait_for_call_blocks_until_the_call_arrives(slack: SlackStandin, web: WebClient) -> None:
    timer = threading.Timer(0.2, lambda: web.chat_postMessage(channel="C0GPULAB", text="later"))
    timer.start()
    try:
        call = slack.wait_for_call("chat.postMessage", lambda c: c.params["text"] == "later", timeout=5)
    finally:
        timer.join()

    assert call.params["channel"] == "C0GPULAB"


def test_wait_for_call_times_out_naming_what_it_waited_for(slack: SlackStandin, web: WebClient) -> None:
    web.auth_test()

    with pytest.raises(StandinTimeoutError, match=r"views\.publish.*auth\.test"):
        slack.wait_for_call("views.publish", timeout=0.2)
