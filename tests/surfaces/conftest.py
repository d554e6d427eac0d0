"""Helpers for the bot's behaviour tests (on top of the ``harness`` fixture in
tests/conftest.py). Exposed as the ``tools`` fixture so test modules need no
imports from a conftest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from matrix_client.testing import FakeHomeserver, FakeUser

CHAT_EVENT = "org.lambda.surfaces.chat"


@attrs.define
class Tools:
    harness: Any
    tmp_path: Path

    @property
    def hs(self) -> FakeHomeserver:
        return self.harness.hs

    @property
    def store(self):
        return self.harness.app.store

    async def say(self, user: FakeUser, room: str, body: str, settle: float = 5.0) -> str:
        """``user`` writes ``body`` in ``room``; virtual time passes; → event id."""
        event_id = self.hs.text_as(user, room, body)
        await self.harness.settle(settle)
        return event_id

    def messages(self, room: str) -> list[dict[str, Any]]:
        return self.harness.bot_messages(room)

    def notices(self, room: str) -> list[str]:
        return [m["body"] for m in self.messages(room) if m.get("msgtype") == "m.notice"]

    def last(self, room: str) -> dict[str, Any]:
        messages = self.messages(room)
        assert messages, f"the bot said nothing in {room}"
        return messages[-1]

    def created_rooms(self) -> int:
        return len(self.hs.requests_to("POST", "/createRoom"))

    def bot_rooms(self, event_type: str = CHAT_EVENT) -> list[str]:
        """Rooms that carry the bot's ``event_type`` state (chats or Spaces)."""
        return [r for r in self.hs.rooms() if self.hs.state_content(r, event_type) is not None]

    def spaces(self) -> list[str]:
        return [
            r
            for r in self.hs.rooms()
            if (self.hs.state_content(r, "m.room.create") or {}).get("type") == "m.space"
        ]

    def registry(
        self,
        agents: list[dict[str, Any]] | None = None,
        user_agents: dict[str, str] | None = None,
        name: str = "agents.yaml",
    ) -> str:
        """Write a registry YAML in tmp_path; → its path."""
        if agents is None:
            agents = [
                {"id": "agent-0", "label": "Agent 0", "base_url": "http://agent.test/agent_0/"},
                {"id": "agent-1", "label": "Agent 1", "base_url": "http://agent.test/agent_1/"},
            ]
        data: dict[str, Any] = {"agents": agents}
        if user_agents:
            data["user_agents"] = user_agents
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return str(path)

    def foreign_user(self, localpart: str, server: str) -> FakeUser:
        """A user of another homeserver (the fake names users after its own)."""
        own = self.hs.server_name
        self.hs.server_name = server
        try:
            return self.hs.register(localpart)
        finally:
            self.hs.server_name = own

    async def stop(self) -> None:
        self.harness.app.request_stop()
        await self.harness.app_done.wait()

    async def restart_with_wiped_database(self, **env: str) -> None:
        """Stop the bot, delete its database (and WAL files), start it again."""
        await self.stop()
        for path in self.harness.state_dir.glob("surfaces.db*"):
            path.unlink()
        await self.harness.restart(**env)  # the app is already stopped: just starts


@pytest.fixture
def tools(harness, tmp_path) -> Tools:
    return Tools(harness, tmp_path)
