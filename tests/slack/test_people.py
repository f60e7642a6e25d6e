"""Names from Slack's users.info: looked up after the ack, once, kept in memory and the store."""

import asyncio
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gpubot.core.people import PeopleDirectory
from gpubot.slack.people import SlackNames
from gpubot.slack.tasks import AfterAck
from tests.fakes import FakeClock, InMemoryClaimStore


class FakeUsers:
    """`users.info` as Slack answers it: a profile with a display name, or user_not_found."""

    def __init__(self, profiles, delay_s=0.0):
        self.profiles = profiles
        self.delay_s = delay_s
        self.calls = []

    async def users_info(self, user):
        self.calls.append(user)
        await asyncio.sleep(self.delay_s)
        if user not in self.profiles:
            response = AsyncSlackResponse(
                client=None,
                http_verb="GET",
                api_url="users.info",
                req_args={},
                data={"ok": False, "error": "user_not_found"},
                headers={},
                status_code=200,
            )
            raise SlackApiError("user_not_found", response)
        display_name, real_name = self.profiles[user]
        return {
            "ok": True,
            "user": {
                "id": user,
                "name": user.lower(),
                "profile": {"display_name": display_name, "real_name": real_name},
            },
        }


def make(profiles, delay_s=0.0):
    store, clock = InMemoryClaimStore(), FakeClock()
    client = FakeUsers(profiles, delay_s)
    directory = PeopleDirectory(store, clock)
    return SlackNames(directory, client, AfterAck()), client, store, clock


def test_learning_looks_a_person_up_once_and_keeps_the_name_in_the_store():
    async def scenario():
        names, client, store, _ = make({"U0ALICE": ("alice", "Alice Liddell")})
        names.learn(["U0ALICE", "U0ALICE", "host:root"])
        await asyncio.sleep(0.05)
        names.learn(["U0ALICE"])
        await asyncio.sleep(0.05)
        return client.calls, store.people(["U0ALICE"])["U0ALICE"].display_name

    calls, stored = asyncio.run(scenario())
    assert calls == ["U0ALICE"] and stored == "alice"


def test_the_full_name_stands_in_for_an_empty_display_name_and_a_day_old_name_is_refreshed():
    async def scenario():
        names, client, store, clock = make({"U0BOB": ("", "Bob Builder")})
        names.learn(["U0BOB"])
        await asyncio.sleep(0.05)
        first = store.people(["U0BOB"])["U0BOB"].display_name
        client.profiles["U0BOB"] = ("bob", "Bob Builder")
        clock.advance(timedelta(days=1))
        names.learn(["U0BOB"])
        await asyncio.sleep(0.05)
        return first, store.people(["U0BOB"])["U0BOB"].display_name, len(client.calls)

    assert asyncio.run(scenario()) == ("Bob Builder", "bob", 2)


def test_names_for_a_form_error_wait_briefly_then_fall_back():
    async def scenario():
        names, _, _, _ = make({"U0BOB": ("bob", "")})
        quick = await names.names(["U0BOB", "U0GONE"], wait_s=1.0)
        slow_names, _, _, _ = make({"U0BOB": ("bob", "")}, delay_s=5.0)
        started = asyncio.get_running_loop().time()
        slow = await slow_names.names(["U0BOB"], wait_s=0.1)
        return quick, slow, asyncio.get_running_loop().time() - started

    quick, slow, took_s = asyncio.run(scenario())
    assert quick == {"U0BOB": "bob"}  # U0GONE: users.info said user_not_found
    assert slow == {} and took_s < 1.0
