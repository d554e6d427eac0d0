"""The state database schema, as an ordered list of migrations.

Each migration is applied once, in its own transaction, and recorded in
``schema_version``. Never edit a released migration: add a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE kv (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE users (
        user_id        TEXT PRIMARY KEY,
        display_name   TEXT,
        space_id       TEXT,
        dm_room_id     TEXT,
        chat_seq       INTEGER NOT NULL DEFAULT 0,
        flags          TEXT NOT NULL DEFAULT '{}',
        created_at     REAL NOT NULL
    );
    CREATE TABLE chats (
        room_id          TEXT PRIMARY KEY,
        owner            TEXT NOT NULL,
        local_id         TEXT NOT NULL,
        name             TEXT NOT NULL,
        agent_id         TEXT NOT NULL,
        platform_chat_id TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'active',
        flags            TEXT NOT NULL DEFAULT '{}',
        created_at       REAL NOT NULL,
        UNIQUE (owner, local_id)
    );
    CREATE INDEX chats_owner ON chats (owner, status);
    -- Room creation is not idempotent: the intent is recorded first and cleared
    -- once the room is known, so a crash in between is reconciled, not retried blind.
    CREATE TABLE intents (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        key              TEXT UNIQUE,
        status           TEXT NOT NULL DEFAULT 'open',
        room_id          TEXT,
        owner            TEXT NOT NULL,
        kind             TEXT NOT NULL,
        local_id         TEXT,
        name             TEXT,
        agent_id         TEXT,
        platform_chat_id TEXT,
        created_at       REAL NOT NULL
    );
    -- Events the bot acts on, admitted with the since-token in one transaction.
    CREATE TABLE inbox (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id   TEXT NOT NULL UNIQUE,
        lane       TEXT NOT NULL,
        room_id    TEXT NOT NULL,
        sender     TEXT NOT NULL,
        kind       TEXT NOT NULL,
        payload    TEXT NOT NULL,
        status     TEXT NOT NULL DEFAULT 'pending',
        attempts   INTEGER NOT NULL DEFAULT 0,  -- starts: counts crashes/restarts too
        failures   INTEGER NOT NULL DEFAULT 0,  -- attempts that raised
        created_at REAL NOT NULL
    );
    CREATE INDEX inbox_pending ON inbox (status, lane, seq);
    -- Sends with their transaction ids, persisted before the first attempt.
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id    TEXT NOT NULL,
        txn_id     TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        content    TEXT NOT NULL,
        status     TEXT NOT NULL DEFAULT 'pending',
        event_id   TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX outbox_pending ON outbox (status, id);
    -- A turn's attempts and the reply messages it has (one per size part).
    CREATE TABLE turns (
        event_id TEXT PRIMARY KEY,
        attempt  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE turn_parts (
        event_id       TEXT NOT NULL,
        part           INTEGER NOT NULL,
        reply_event_id TEXT NOT NULL,
        PRIMARY KEY (event_id, part)
    );
    -- Files waiting for the next text turn, per (room, user).
    CREATE TABLE stage (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id    TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        rel_path   TEXT NOT NULL,
        name       TEXT NOT NULL,
        size       INTEGER NOT NULL,
        mime       TEXT NOT NULL,
        source_event TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX stage_room ON stage (room_id, user_id, id);
    """,
    # 2 (issue 13): platform chat ids are looked up when a binding is stored (two rooms
    # must never share one agent conversation; the store refuses the second); staged
    # files remember their workspace, and files a turn carried to the agent are kept
    # for deletion after the retention period (bot.incoming_retention_days).
    """
    CREATE INDEX chats_platform ON chats (platform_chat_id);
    ALTER TABLE stage ADD COLUMN workspace TEXT;
    CREATE TABLE incoming_files (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        workspace   TEXT NOT NULL,
        rel_path    TEXT NOT NULL,
        consumed_at REAL NOT NULL
    );
    CREATE INDEX incoming_consumed ON incoming_files (consumed_at);
    """,
    # 3: end-to-end encryption. The machine's own tables (crypto_*) are made by
    # matrix_client.crypto.SqliteCryptoStore; this is the bot's part: encrypted events
    # waiting for their room key, admitted with the sync token, kept for a bounded time.
    """
    CREATE TABLE e2ee_waiting (
        event_id   TEXT PRIMARY KEY,
        room_id    TEXT NOT NULL,
        session_id TEXT NOT NULL,
        event      TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX e2ee_waiting_session ON e2ee_waiting (room_id, session_id);
    CREATE INDEX e2ee_waiting_age ON e2ee_waiting (created_at);
    """,
    # 4: threads as conversations of their own, and what each turn was asked (edits and
    # 🔁 run a turn again into its own reply).
    """
    CREATE TABLE threads (
        room_id          TEXT NOT NULL,
        root             TEXT NOT NULL,
        platform_chat_id TEXT NOT NULL,
        mirrored         INTEGER NOT NULL DEFAULT 0,  -- its state event is in the room
        created_at       REAL NOT NULL,
        PRIMARY KEY (room_id, root)
    );
    CREATE TABLE turn_inputs (
        event_id    TEXT PRIMARY KEY,          -- the turn (its first message)
        room_id     TEXT NOT NULL,
        thread_root TEXT NOT NULL DEFAULT '',  -- '' = the room's main timeline
        messages    TEXT NOT NULL,             -- JSON [{id, text, reply_to}] in order
        attachments TEXT NOT NULL,             -- JSON [workspace-relative path]
        seq         INTEGER NOT NULL           -- the highest per conversation is the latest
    );
    CREATE INDEX turn_inputs_latest ON turn_inputs (room_id, thread_root, seq);
    CREATE TABLE turn_messages (
        message_id TEXT PRIMARY KEY,           -- a user message a turn answered
        turn_id    TEXT NOT NULL
    );
    CREATE INDEX turn_parts_reply ON turn_parts (reply_event_id);
    """,
    # 5 (issue 15): usage. One row per finished turn, tokens NULL = the agent gave no
    # count (missing or 0), ``month`` the UTC month the turn finished in (YYYY-MM);
    # written in the turn's final transaction only when that transaction finishes the
    # turn's inbox item (pending → done), so a crash re-run never counts twice. No
    # index: the sums come from ``usage_totals`` (per owner, month and chat, updated in
    # the same transaction), so a turn writes two B-tree pages, not four, and the
    # budget check and !usage read a handful of rows, not every turn.
    """
    CREATE TABLE usage (
        turn_key         TEXT NOT NULL,  -- the inbox item the turn ran for
        room_id          TEXT NOT NULL,
        owner            TEXT NOT NULL,
        agent_id         TEXT NOT NULL,
        platform_chat_id TEXT NOT NULL,
        tokens           INTEGER,
        month            TEXT NOT NULL,
        finished_at      REAL NOT NULL
    );
    CREATE TABLE usage_totals (
        owner   TEXT NOT NULL,
        month   TEXT NOT NULL,
        room_id TEXT NOT NULL,
        tokens  INTEGER NOT NULL,  -- known tokens
        turns   INTEGER NOT NULL,  -- finished turns
        unknown INTEGER NOT NULL,  -- of them, turns without a count
        PRIMARY KEY (owner, month, room_id)
    ) WITHOUT ROWID;
    """,
    # 6 (issue 15 §3): the chat's transcript — one row per exchange (the user's words of
    # a turn, the agent's final reply text, the files in and out), keyed by the turn so a
    # crash re-run or an edit re-run replaces its row instead of adding one; bounded per
    # conversation (entries, bytes) in the turn's own transaction and pruned by age.
    # Snapshots (``!save``): a named copy of a conversation's rows, per owner, kept with
    # the room they came from (``!forget`` in that room deletes them).
    """
    CREATE TABLE transcript (
        seq          INTEGER PRIMARY KEY,  -- rowid order: oldest first (no AUTOINCREMENT:
                                           -- only the oldest or all rows are ever deleted)
        turn_id      TEXT NOT NULL UNIQUE,
        room_id      TEXT NOT NULL,
        conversation TEXT NOT NULL DEFAULT '',  -- '' = the room, else the thread root
        bytes        INTEGER NOT NULL,          -- before the texts: read without them
        at           REAL NOT NULL,
        user_text    TEXT NOT NULL,
        agent_text   TEXT NOT NULL,
        files_in     TEXT NOT NULL DEFAULT '[]',  -- JSON [file name]
        files_out    TEXT NOT NULL DEFAULT '[]'
    );
    -- Covering the trim's scan (sizes of a conversation, newest first) without the texts.
    CREATE INDEX transcript_chat ON transcript (room_id, conversation, seq, bytes);
    CREATE INDEX transcript_age ON transcript (at);
    CREATE TABLE snapshots (
        owner      TEXT NOT NULL,
        name       TEXT NOT NULL,
        room_id    TEXT NOT NULL,
        entries    INTEGER NOT NULL,
        body       TEXT NOT NULL,               -- JSON [entry]
        created_at REAL NOT NULL,
        PRIMARY KEY (owner, name)
    );
    CREATE INDEX snapshots_room ON snapshots (room_id);
    """,
]
