import pytest

from agent_client import ConfirmRequest, SendFile, TextChunk, ToolProgress, TurnEnd
from agent_client._frames import (
    AgentErrorFrame,
    FrameError,
    GracefulDisconnect,
    Status,
    UnknownFrame,
    encode_user_message,
    parse_frame,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type":"STATUS"}', Status({})),
        ('{"type":"AGENT_EVENT_TEXT_CHUNK","text":"hi"}', TextChunk("hi")),
        ('{"type":"AGENT_EVENT_SEND_FILE","path":"/workspace/a"}', SendFile("/workspace/a")),
        (
            '{"type":"AGENT_EVENT_TOOL_RESULT","result":1}',
            ToolProgress("AGENT_EVENT_TOOL_RESULT", {"result": 1}),
        ),
        (
            '{"type":"AGENT_EVENT_CONFIRM_REQUEST","id":"c1","text":"ok?"}',
            ConfirmRequest("c1", "ok?"),
        ),
        ('{"type":"AGENT_EVENT_END","tokens_used":12}', TurnEnd(12)),
        ('{"type":"AGENT_EVENT_END"}', TurnEnd(None)),
        ('{"type":"AGENT_EVENT_END","tokens_used":"12"}', TurnEnd(None)),
        ('{"type":"AGENT_EVENT_END","tokens_used":true}', TurnEnd(None)),
        ('{"type":"ERROR","code":"E1","details":"boom"}', AgentErrorFrame("E1", "boom")),
        ('{"type":"ERROR"}', AgentErrorFrame(None, None)),
        ('{"type":"GRACEFUL_DISCONNECT"}', GracefulDisconnect()),
        ('{"type":"SOMETHING_NEW","x":1}', UnknownFrame("SOMETHING_NEW")),
    ],
)
def test_parse(raw: str, expected: object) -> None:
    assert parse_frame(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1,2]",
        '"STATUS"',
        "{}",
        '{"type":1}',
        '{"type":"AGENT_EVENT_TEXT_CHUNK"}',
        '{"type":"AGENT_EVENT_TEXT_CHUNK","text":5}',
        '{"type":"AGENT_EVENT_SEND_FILE","path":null}',
        '{"type":"AGENT_EVENT_CONFIRM_REQUEST","id":"x"}',
        b'{"type":"STATUS"}',
    ],
)
def test_parse_rejects(raw: str | bytes) -> None:
    with pytest.raises(FrameError):
        parse_frame(raw)


def test_encode_user_message() -> None:
    assert (
        encode_user_message("привет", ["a.txt"])
        == '{"type": "USER_MESSAGE", "text": "привет", "attachments": ["a.txt"]}'
    )
