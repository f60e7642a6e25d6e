"""The Slack adapter: slash commands, buttons, forms, the Home tab and DMs over Socket Mode and the Web API."""
