"""Every user-facing text, in one catalogue with ``ru`` (default) and ``en``.

Keys are stable identifiers; texts take ``str.format`` fields. A missing key in a
locale falls back to ``ru``; a test checks both locales have the same keys and
fields, so a translation can never break a reply.
"""

from __future__ import annotations

from typing import Any

DEFAULT_LOCALE = "ru"
LOCALES = ("ru", "en")

_RU: dict[str, str] = {
    "space_name": "{brand} — {name}",
    "first_chat_name": "Чат {n}",
    "welcome": (
        "Привет, {name}! Пиши — я здесь.\n"
        "Команды: !new — новый чат, !chats — список чатов, !help — справка."
    ),
    "dm_provisioned": (
        "Готово: пространство «{space}» и чат «{chat}» созданы, приглашения отправлены. "
        "Общение идёт в рабочих чатах, не здесь."
    ),
    "dm_reinvited": "Приглашения в пространство и {count} чат(ов) отправлены повторно.",
    "dm_reinvited_new_chat": (
        "Активных чатов не было — создан новый: {chat}. Приглашения отправлены."
    ),
    "dm_encrypted": (
        "Этот диалог зашифрован, а я работаю только в незашифрованных комнатах, "
        "которые создал сам. Пиши в чатах своего пространства."
    ),
    "chat_created": "Создан чат: {name} ({chat_id})",
    "chats_header": "Твои чаты:",
    "chats_line": "{marker} {chat_id} — {name}",
    "chats_empty": "Активных чатов нет. !new создаст новый.",
    "rename_usage": "Использование: !rename <новое имя>",
    "renamed": "Чат переименован: {name}",
    "archived": (
        "Чат {chat_id} архивирован. Память агента сохранена; новый чат — !new в любом чате."
    ),
    "archived_room": "Этот чат в архиве. Создай новый командой !new.",
    "context_reset": "Контекст сброшен.",
    "stop_none": "Сейчас нет запущенного ответа.",
    "stopped": "Останавливаю ответ.",
    "interrupted_mark": "⚠️ (ответ прерван)",
    "files_empty": "Очередь файлов пуста.",
    "files_header": "Файлы для следующего сообщения:",
    "files_line": "{n}. {name} ({size})",
    "remove_usage": "Использование: !remove <номер> или !remove all",
    "remove_bad_index": "Нет файла с номером {n}. В очереди файлов: {count}.",
    "removed_one": "Файл убран из очереди: {name}",
    "removed_all": "Очередь файлов очищена ({count}).",
    "file_staged": "📎 Файл «{name}» получен ({size}). Он уйдёт агенту со следующим сообщением.",
    "file_too_large": "Файл «{name}» слишком большой ({size}); предел — {limit}.",
    "file_failed": "Не удалось получить файл «{name}». Попробуй отправить ещё раз.",
    "file_out_missing": "Агент хотел отправить файл {path}, но его нет.",
    "file_out_unsafe": "Агент назвал файл вне своей рабочей папки ({path}) — не отправляю.",
    "file_out_failed": "Не удалось отправить файл {path}.",
    "status": (
        "Агент: {agent} ({health})\n"
        "Чат: {chat_id} · платформенный id: {platform_chat_id}\n"
        "Ответ: {turn}\n"
        "Файлов в очереди: {files}"
    ),
    "status_turn_running": "идёт",
    "status_turn_idle": "нет",
    "status_turn_queued": "идёт, в очереди ещё {n}",
    "health_ok": "на связи",
    "health_down": "недоступен: {code}",
    "help": (
        "Команды:\n"
        "!new [имя] — новый чат\n"
        "!chats — список чатов\n"
        "!rename <имя> — переименовать чат\n"
        "!archive — архивировать чат\n"
        "!clear — сбросить контекст агента\n"
        "!stop — остановить ответ\n"
        "!yes / !no — ответ на запрос агента\n"
        "!list — файлы в очереди\n"
        "!remove <n> | all — убрать файл из очереди\n"
        "!status — состояние\n"
        "!settings — настройки"
    ),
    "settings": "Настройки агента пока недоступны на платформе.",
    "unknown_command": "Неизвестная команда {command}. Список команд — !help.",
    "not_owner": "Это чат {owner}: агентом здесь управляет только владелец.",
    "default_agent": "Для тебя пока не настроен агент — отвечает агент по умолчанию ({agent}).",
    "busy": (
        "⏳ Ещё отвечаю на предыдущие сообщения (в очереди {n}). "
        "Новые сообщения сейчас не принимаются — отправь ещё раз после ответа."
    ),
    "confirm_request": "❓ {text}\nОтветь !yes или !no.",
    "confirm_sent": "Ответ отправлен агенту: {answer}.",
    "confirm_yes_text": "да",
    "confirm_no_text": "нет",
    "agent_timeout": "Агент не отвечает ({phase}). Попробуй ещё раз.",
    "agent_unavailable": "Агент недоступен. Попробуй позже.",
    "agent_disconnected": "Агент оборвал соединение. Попробуй ещё раз.",
    "agent_protocol": "Агент ответил некорректно. Попробуй ещё раз.",
    "agent_error": "Ошибка агента: {code}",
    "turn_failed": "Не удалось обработать сообщение. Попробуй ещё раз.",
    "message_truncated": "Сообщение слишком длинное: агенту ушли первые {limit} символов.",
    "shutting_down": (
        "Бот перезапускается — ответ прерван. Сообщение будет обработано после запуска."
    ),
    "phase_connect": "подключение",
    "phase_status": "ожидание готовности",
    "phase_first_text": "ожидание ответа",
    "phase_idle": "пауза в ответе",
    "phase_total": "общее время",
    "dm_use_rooms": "Я отвечаю в рабочих чатах твоего пространства. Приглашения отправлены заново.",
}

_EN: dict[str, str] = {
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
}

CATALOGUE: dict[str, dict[str, str]] = {"ru": _RU, "en": _EN}


def t(locale: str, key: str, **fields: Any) -> str:
    """The text for ``key`` in ``locale`` with ``fields`` filled in."""
    table = CATALOGUE.get(locale, _RU)
    text = table.get(key) or _RU[key]
    return text.format(**fields) if fields else text


def human_size(n: int) -> str:
    """A short, locale-neutral size: ``512 B``, ``1.5 KB``, ``12 MB``."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
