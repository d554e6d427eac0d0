"""The English catalogue.

Written for people, not translated word by word from ``ru``: the same keys and fields,
in the words an English speaker would use (contractions, "I" for the bot).
"""

from __future__ import annotations

EN: dict[str, str] = {
    "space_name": "{brand} — {name}",
    "first_chat_name": "Chat {n}",
    "welcome": (
        "Hi, {name}! Just write here and your agent will answer.\n"
        "Commands: !new — new chat, !chats — your chats, !help — all commands."
    ),
    "dm_provisioned": (
        "All set: I created the space “{space}” with the chat “{chat}” and invited you. "
        "Talk to your agent there — this direct chat is only for getting started."
    ),
    "dm_reinvited": (
        "I've sent you the invites to your space and {count} {count:plural:chat|chats} again."
    ),
    "dm_reinvited_new_chat": (
        "You had no active chats, so I created a new one, {chat}, and sent you the invites."
    ),
    "dm_encrypted": (
        "This chat is encrypted, and I only work in the unencrypted rooms I create. "
        "Please write to me in the chats in your space."
    ),
    "chat_created": "Chat created: {name} ({local_id})",
    "chats_header": "Your chats:",
    "chats_line": "{marker} {local_id} — {name}",
    "chats_empty": "You have no active chats. Send !new to start one.",
    "rename_usage": "Usage: !rename <new name>",
    "renamed": "Chat renamed to {name}.",
    "archived": (
        "Chat {local_id} is archived. Your agent still remembers it; send !new to start a new chat."
    ),
    "archived_room": "This chat is archived. Send !new to start a new one.",
    "context_reset": "Context cleared: the agent starts this chat afresh.",
    "stop_none": "There's no reply to stop right now.",
    "stopped": "Stopping the reply.",
    "interrupted_mark": "⚠️ (reply interrupted)",
    "files_empty": "No files are waiting to go with your next message.",
    "files_header": "Files for your next message:",
    "files_line": "{n}. {name} ({size:size})",
    "remove_usage": "Usage: !remove <number> or !remove all",
    "remove_bad_index": (
        "There's no file number {n}. You have {count} {count:plural:file|files} waiting."
    ),
    "removed_one": "Removed {name}; it won't go with your next message.",
    "removed_all": "Removed all waiting files ({count} {count:plural:file|files}).",
    "file_staged": (
        "📎 Got “{name}” ({size:size}). It will go to the agent with your next message."
    ),
    "file_too_large": "“{name}” is too big ({size:size}); the limit is {limit:size}.",
    "file_failed": "I couldn't download “{name}”. Please send it again.",
    "file_out_missing": "The agent tried to send {path}, but that file doesn't exist.",
    "file_out_unsafe": (
        "The agent tried to send a file outside its workspace ({path}), so I didn't send it."
    ),
    "file_out_failed": "I couldn't send the file {path}.",
    "status": (
        "Agent: {agent} ({health})\n"
        "Chat: {local_id} · platform id: {platform_chat_id}\n"
        "{turn}\n"
        "Files waiting for your next message: {files}\n"
        "{usage}"
    ),
    "status_usage": "Tokens used in this chat: {tokens}",
    "status_turn_running": "The agent is replying right now.",
    "status_turn_idle": "Nothing is running right now.",
    "status_turn_queued": (
        "The agent is replying right now; {n} more {n:plural:message|messages} waiting."
    ),
    "status_presence": "{state}, {seen}",
    "presence_online": "online",
    "presence_away": "away",
    "presence_offline": "offline",
    "presence_unknown": "checking…",
    "seen_now": "last seen just now",
    "seen_minutes": "last seen {n} {n:plural:minute|minutes} ago",
    "seen_hours": "last seen {n} {n:plural:hour|hours} ago",
    "seen_days": "last seen {n} {n:plural:day|days} ago",
    "seen_never": "not seen yet",
    "help": (
        "Commands:\n"
        "!new [name] — start a new chat\n"
        "!chats — list your chats\n"
        "!rename <name> — rename this chat\n"
        "!archive — archive this chat\n"
        "!clear — clear the agent's context for this chat\n"
        "!stop — stop the current reply (or react 🛑 to it)\n"
        "!yes / !no — answer the agent's question (or react 👍 / 👎 to it)\n"
        "!list — files waiting for your next message\n"
        "!remove <n> | all — take a file (or all of them) off that list\n"
        "!status — your agent, this chat and what's running now\n"
        "!usage — tokens used: this chat, all your chats, this month\n"
        "!context — the last exchanges of this chat\n"
        "!save [name] — save this chat's transcript; !snapshots — your saved ones\n"
        "!load <name> — continue from a snapshot in a new agent conversation\n"
        "!restore — give the agent this chat's conversation again (after it restarted)\n"
        "!forget — delete this chat's transcript and its snapshots\n"
        "!settings — agent settings (not available yet)\n"
        "🔁 on the latest reply — answer again; edit your message — the reply follows"
    ),
    "settings": "Agent settings aren't available yet.",
    "unknown_command": "I don't know the command {command}. Send !help to see them all.",
    "not_owner": "This chat belongs to {owner}; only they can talk to the agent here.",
    "default_agent": (
        "You don't have an agent of your own yet, so the default agent ({agent}) "
        "will answer for now."
    ),
    "busy": (
        "⏳ I'm still working on your earlier messages ({n} waiting), so I can't take more "
        "right now: these were not passed on. Please send them again once the reply is done."
    ),
    "confirm_request": "❓ {text}\nReply !yes or !no (or react 👍 / 👎).",
    "confirm_sent": "Sent your answer to the agent: {answer}.",
    "confirm_yes_text": "yes",
    "confirm_no_text": "no",
    "agent_timeout": "The agent isn't responding ({phase}). Please try again.",
    "agent_unavailable": "The agent is unavailable right now. Please try again later.",
    "agent_offline_wait": (
        "⏳ The agent is offline right now. I'll pass your message on as soon as it's back "
        "(I'll wait up to {minutes} {minutes:plural:minute|minutes})."
    ),
    "agent_offline_wait_stopped": "OK, I've stopped waiting: this message won't go to the agent.",
    "agent_disconnected": "The agent dropped the connection. Please try again.",
    "agent_protocol": "The agent sent a reply I couldn't read. Please try again.",
    "agent_error": "The agent reported an error: {code}",
    "turn_failed": "Something went wrong with your message. Please try again.",
    "message_truncated": (
        "Your message was too long, so the agent only got the first {limit} characters."
    ),
    "shutting_down": (
        "I'm restarting, so this reply was cut short. I'll answer your message once I'm back."
    ),
    "phase_connect": "while connecting",
    "phase_status": "while getting ready",
    "phase_first_text": "before replying",
    "phase_idle": "stalled mid-reply",
    "phase_total": "took too long",
    "file_out_too_large": (
        "The agent tried to send {path} ({size:size}), but the limit is {limit:size}, "
        "so I didn't send it."
    ),
    "file_out_not_regular": (
        "The agent named {path}, which isn't a regular file, so I didn't send it."
    ),
    "file_store_failed": (
        "I couldn't save “{name}” in the agent's workspace. Please tell the administrator."
    ),
    "truncated": "(truncated)",
    "reply_truncated": "✂️ (reply cut short: it was longer than {limit} characters)",
    "budget_turns": (
        "⏳ That's a lot of messages at once, so I'm not answering them for now. "
        "Please wait about {seconds} s and send again."
    ),
    "budget_commands": (
        "⏳ That's a lot of commands at once, so I'm not running them for now. "
        "Please wait about {seconds} s and try again."
    ),
    "budget_files": (
        "⏳ That's a lot of files at once, so I'm not taking them for now. "
        "Please wait about {seconds} s and send them again."
    ),
    "chat_limit": (
        "You already have {limit} {limit:plural:chat|chats}, the most I can keep "
        "(archived ones count too), so I didn't create a new one."
    ),
    "files_limit": (
        "{limit} {limit:plural:file is|files are} already waiting for your next message, "
        "so I didn't add “{name}”. Send a message, or take some off the list with !remove."
    ),
    "undecryptable": (
        "🔒 I couldn't decrypt {count:plural:your last message|your last {count} messages}: "
        "my device never got the key for {count:plural:it|them}. Please send it again. If "
        "this keeps happening, make sure your app trusts my device (it may be new after a "
        "restart of mine) and sends keys to unverified devices."
    ),
    "unsupported_location": "📍 Locations do not reach the agent — describe the place in text.",
    "unsupported_sticker": "Stickers are not passed to the agent — please write it in text.",
    "unsupported_poll": "Polls are not passed to the agent — please ask in text.",
    "unsupported_other": "This kind of message cannot reach the agent — please write it in text.",
    "usage": (
        "📊 Tokens used (months are calendar months in UTC)\n"
        "This chat: {chat_month} this month · {chat_total} in total\n"
        "All your chats: {user_month} this month · {user_total} in total\n"
        "Replies without a token count: {chat_unknown} of {chat_turns} in this chat, "
        "{user_unknown} of {user_turns} in all your chats"
    ),
    "usage_budget": "Monthly token budget: {used} of {budget} ({percent}); resets on {resets}.",
    "usage_budget_spent": (
        "Monthly token budget spent: {used} of {budget}; messages reach the agent again "
        "on {resets}."
    ),
    "budget_exhausted": (
        "⛔ Your monthly token budget is spent ({used} of {budget}), so this message was not "
        "passed to the agent. The budget resets on {resets}. Commands still work; "
        "details: !usage."
    ),
    "budget_warning": (
        "⚠️ You have used {percent} or more of your monthly token budget ({budget}). It "
        "resets on {resets}; once it is spent, messages won't reach the agent until then. "
        "Details: !usage."
    ),
    # ---- the chat transcript ------------------------------------------------
    "context_empty": "This chat has no transcript yet: nothing has been said since it was kept.",
    "context_header": ("The last {n} {n:plural:exchange|exchanges} of this chat ({total} kept):"),
    "context_you": "You: {text}",
    "context_agent": "Agent: {text}",
    "context_files": "  📎 {names}",
    "save_bad_name": (
        "A snapshot name is 1–{limit} letters, digits, “-”, “_” or “.”, "
        "starting with a letter or digit — for example !save plan-v2."
    ),
    "save_empty": "There's nothing to save yet: this chat has no transcript.",
    "saved": (
        "Saved “{name}” ({n} {n:plural:exchange|exchanges}). "
        "Send !load {name} in any of your chats to continue from it."
    ),
    "saved_replaced": (
        "Replaced “{name}” with this chat's transcript ({n} {n:plural:exchange|exchanges})."
    ),
    "snapshots_limit": (
        "You already have {limit} {limit:plural:snapshot|snapshots}, the most I keep. "
        "Save under an existing name to replace it, or !forget in a chat deletes its snapshots."
    ),
    "snapshots_empty": "You have no snapshots yet. !save [name] saves this chat's transcript.",
    "snapshots_header": "Your snapshots:",
    "snapshots_line": "• {name} — {n} {n:plural:exchange|exchanges}, {date} (from {chat})",
    "load_usage": "Usage: !load <name>. Your snapshots: !snapshots",
    "load_unknown": "You have no snapshot named “{name}”. Your snapshots: !snapshots",
    "context_loaded": (
        "📥 Loading “{name}” into a new agent conversation: "
        "{n} {n:plural:exchange|exchanges}{omitted}. The agent's reply follows; then just go on."
    ),
    "restore_empty": "There's nothing to restore: this chat has no transcript.",
    "context_restored": (
        "📥 Restoring this chat in a new agent conversation: "
        "{n} {n:plural:exchange|exchanges}{omitted}. The agent's reply follows; then just go on."
    ),
    "primer_omitted": " (the {omitted} oldest left out to fit)",
    "restore_offer": (
        "ℹ️ The agent has restarted and may have forgotten this chat. "
        "Send !restore to give it the conversation so far."
    ),
    "forgot": (
        "🗑 Deleted this chat's transcript ({entries} {entries:plural:exchange|exchanges}) and "
        "{snapshots} {snapshots:plural:snapshot|snapshots} saved from it. The agent's own "
        "memory is not touched: !clear starts it afresh."
    ),
    "forgot_nothing": "Nothing to delete: this chat has no transcript and no snapshots.",
}
