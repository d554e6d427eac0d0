"""The English catalogue."""

from __future__ import annotations

EN: dict[str, str] = {
    "space_name": "{brand} — {name}",
    "first_chat_name": "Chat {n}",
    "welcome": (
        "Hi, {name}! Write to me — I'm here.\n"
        "Commands: !new — new chat, !chats — your chats, !help — help."
    ),
    "dm_provisioned": (
        "Done: the space “{space}” and the chat “{chat}” are created and you are invited. "
        "Conversations happen in the working chats, not here."
    ),
    "dm_reinvited": "Invites to your space and {count} chat(s) sent again.",
    "dm_reinvited_new_chat": "You had no active chats, so I created one: {chat}. Invites sent.",
    "dm_encrypted": (
        "This conversation is encrypted; I only work in the unencrypted rooms I created. "
        "Please write in the chats of your space."
    ),
    "chat_created": "Chat created: {name} ({chat_id})",
    "chats_header": "Your chats:",
    "chats_line": "{marker} {chat_id} — {name}",
    "chats_empty": "No active chats. !new creates one.",
    "rename_usage": "Usage: !rename <new name>",
    "renamed": "Chat renamed: {name}",
    "archived": "Chat {chat_id} archived. Agent memory is kept; create a new chat with !new.",
    "archived_room": "This chat is archived. Create a new one with !new.",
    "context_reset": "Context reset.",
    "stop_none": "No reply is running right now.",
    "stopped": "Stopping the reply.",
    "interrupted_mark": "⚠️ (reply interrupted)",
    "files_empty": "No files are staged.",
    "files_header": "Files for your next message:",
    "files_line": "{n}. {name} ({size})",
    "remove_usage": "Usage: !remove <number> or !remove all",
    "remove_bad_index": "There is no file number {n}. Staged files: {count}.",
    "removed_one": "File unstaged: {name}",
    "removed_all": "All staged files removed ({count}).",
    "file_staged": "📎 Got “{name}” ({size}). It goes to the agent with your next message.",
    "file_too_large": "“{name}” is too large ({size}); the limit is {limit}.",
    "file_failed": "Could not fetch “{name}”. Please send it again.",
    "file_out_missing": "The agent wanted to send {path}, but the file does not exist.",
    "file_out_unsafe": "The agent named a file outside its workspace ({path}); not sending it.",
    "file_out_failed": "Could not send the file {path}.",
    "status": (
        "Agent: {agent} ({health})\n"
        "Chat: {chat_id} · platform id: {platform_chat_id}\n"
        "Reply: {turn}\n"
        "Staged files: {files}"
    ),
    "status_turn_running": "running",
    "status_turn_idle": "none",
    "status_turn_queued": "running, {n} more queued",
    "health_ok": "reachable",
    "health_down": "unavailable: {code}",
    "help": (
        "Commands:\n"
        "!new [name] — new chat\n"
        "!chats — list chats\n"
        "!rename <name> — rename this chat\n"
        "!archive — archive this chat\n"
        "!clear — reset the agent's context\n"
        "!stop — stop the reply\n"
        "!yes / !no — answer the agent's question\n"
        "!list — staged files\n"
        "!remove <n> | all — unstage files\n"
        "!status — status\n"
        "!settings — settings"
    ),
    "settings": "Agent settings are not available from the platform yet.",
    "unknown_command": "Unknown command {command}. See !help.",
    "not_owner": "This is {owner}'s chat: only the owner talks to the agent here.",
    "default_agent": (
        "No agent is configured for you yet — the default agent ({agent}) answers meanwhile."
    ),
    "busy": (
        "⏳ Still answering your earlier messages ({n} waiting). "
        "New messages are not accepted right now — send again after the reply."
    ),
    "confirm_request": "❓ {text}\nAnswer !yes or !no.",
    "confirm_sent": "Answer sent to the agent: {answer}.",
    "confirm_yes_text": "yes",
    "confirm_no_text": "no",
    "agent_timeout": "The agent is not responding ({phase}). Please try again.",
    "agent_unavailable": "The agent is unavailable. Please try later.",
    "agent_disconnected": "The agent dropped the connection. Please try again.",
    "agent_protocol": "The agent sent an invalid reply. Please try again.",
    "agent_error": "Agent error: {code}",
    "turn_failed": "Could not process the message. Please try again.",
    "message_truncated": "The message is too long: the agent got its first {limit} characters.",
    "shutting_down": (
        "The bot is restarting — reply interrupted. The message is answered after restart."
    ),
    "phase_connect": "connecting",
    "phase_status": "waiting for ready",
    "phase_first_text": "waiting for the reply",
    "phase_idle": "pause in the reply",
    "phase_total": "total time",
    "dm_use_rooms": "I answer in the working chats of your space. Invites sent again.",
    "truncated": "(truncated)",
    "reply_truncated": "✂️ (reply truncated: longer than {limit} characters)",
    "budget_turns": (
        "⏳ Too many messages in a short time: they are not answered for now. "
        "Wait about {seconds} s and send again."
    ),
    "budget_commands": (
        "⏳ Too many commands in a short time: they are not run for now. "
        "Wait about {seconds} s and try again."
    ),
    "budget_files": (
        "⏳ Too many files in a short time: they are not accepted for now. "
        "Wait about {seconds} s and send them again."
    ),
    "chat_limit": (
        "You have reached the limit of {limit} chats (archived ones count too): "
        "no new chat was created."
    ),
    "files_limit": (
        "{limit} files are already waiting for your next message, so “{name}” was not "
        "added. Send a message, or unstage some with !remove."
    ),
}
