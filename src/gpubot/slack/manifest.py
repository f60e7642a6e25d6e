"""What the Slack app must be configured with: the one list the manifest, `gpubot doctor` and tests share.

`manifest.yml` at the top of the repository says the same for Slack's "Create an app from a
manifest"; a test keeps the two identical.
"""

from __future__ import annotations

SLASH_COMMAND = "/gpu"

# Nothing more than gpubot needs: the slash command (`commands`), DMs and message updates (`chat:write`),
# opening a DM before the first one (`im:write`), reading the bot's own DMs back to tell whether a DM
# whose answer was lost reached Slack (`im:history`), and looking people up (`users:read`).
BOT_SCOPES: tuple[str, ...] = ("commands", "chat:write", "im:write", "im:history", "users:read", "files:write")

# The Home tab is rendered when someone opens it.
BOT_EVENTS: tuple[str, ...] = ("app_home_opened",)

# The scope Socket Mode's app-level token needs (not part of the manifest: it is made by hand).
APP_TOKEN_SCOPE = "connections:write"
