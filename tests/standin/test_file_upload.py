"""The stand-in's file upload, as the real slack_sdk's files_upload_v2 drives it: URL, POST, complete."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.standin import SlackStandin

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def client(slack: SlackStandin) -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.api_url, token=slack.bot_token)


def test_files_upload_v2_then_a_message_showing_the_image():
    with SlackStandin() as slack:

        async def main():
            api = client(slack)
            uploaded = await api.files_upload_v2(content=PNG, filename="digest.png", title="Week 48")
            file_id = uploaded["files"][0]["id"]
            image = {"type": "image", "slack_file": {"id": file_id}, "alt_text": "chart"}
            posted = await api.chat_postMessage(channel="C0DIGEST", text="digest", blocks=[image])
            return file_id, posted

        file_id, posted = asyncio.run(main())
        assert posted["ok"]
        stored = slack.uploaded(file_id)
        assert stored is not None and stored.data == PNG and stored.title == "Week 48" and stored.completed
        assert [call.method for call in slack.calls() if call.method.startswith(("files.", "upload"))] == [
            "files.getUploadURLExternal",
            "upload",
            "files.completeUploadExternal",
        ]


def test_a_message_naming_a_file_never_uploaded_is_refused_as_slack_does():
    with SlackStandin() as slack:
        image = {"type": "image", "slack_file": {"id": "F404"}, "alt_text": "chart"}
        with pytest.raises(SlackApiError) as refused:
            asyncio.run(client(slack).chat_postMessage(channel="C0DIGEST", text="x", blocks=[image]))
        assert refused.value.response["error"] == "invalid_blocks"


def test_completing_an_upload_whose_bytes_never_came_fails():
    with SlackStandin() as slack:

        async def main():
            api = client(slack)
            started = await api.files_getUploadURLExternal(filename="x.png", length=10)
            return await api.files_completeUploadExternal(files=[{"id": started["file_id"], "title": "x"}])

        with pytest.raises(SlackApiError) as refused:
            asyncio.run(main())
        assert refused.value.response["error"] == "file_not_found"


def test_without_the_files_write_scope_the_upload_is_refused():
    with SlackStandin(scopes={"chat:write"}) as slack:
        with pytest.raises(SlackApiError) as refused:
            asyncio.run(client(slack).files_upload_v2(content=PNG, filename="digest.png"))
        assert refused.value.response["error"] == "missing_scope"
