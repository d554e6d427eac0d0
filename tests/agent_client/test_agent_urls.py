import pytest

from agent_client import WsTarget, endpoint_url, normalize_base_url


def test_protocol_example() -> None:
    assert (
        endpoint_url("http://agents.internal:7000/agent_17", "41")
        == "ws://agents.internal:7000/agent_17/v1/agent_ws/41/"
    )


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://h:7000/agent_17", "ws://h:7000/agent_17/"),
        ("http://h:7000/agent_17/", "ws://h:7000/agent_17/"),
        ("https://h/agent_17", "wss://h/agent_17/"),
        ("ws://h:1/x", "ws://h:1/x/"),
        ("wss://h/x/y/", "wss://h/x/y/"),
        ("HTTP://h:7000", "ws://h:7000/"),
        ("http://h:7000/", "ws://h:7000/"),
        ("http://h/agent_17?token=x#frag", "ws://h/agent_17/"),
        ("http://h/agent_17/v1/agent_ws/41/", "ws://h/agent_17/"),
        ("http://h/agent_17/v1/agent_ws/41/?q=1", "ws://h/agent_17/"),
        ("http://h/v1/agent_ws/", "ws://h/"),
        ("http://h/v1/agent_ws", "ws://h/"),
        ("  http://h/a//  ", "ws://h/a/"),
        ("http://[::1]:8080/p", "ws://[::1]:8080/p/"),
    ],
)
def test_normalize(base: str, expected: str) -> None:
    assert normalize_base_url(base) == expected
    assert normalize_base_url(expected) == expected  # idempotent


@pytest.mark.parametrize("bad", ["ftp://h/x", "h:7000/x", "http:///nohost", ""])
def test_normalize_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="agent base url"):
        normalize_base_url(bad)


def test_endpoint_rejects_empty_chat() -> None:
    with pytest.raises(ValueError, match="chat id"):
        endpoint_url("http://h", "")


def test_target() -> None:
    t = WsTarget.from_url(endpoint_url("https://user@agents:8443/p", "5"))
    assert (t.host, t.port, t.secure) == ("agents", 8443, True)
    assert t.host_header == "agents:8443"
    assert t.resource == "/p/v1/agent_ws/5/"
    t = WsTarget.from_url(endpoint_url("http://agents", "5"))
    assert (t.port, t.host_header) == (80, "agents")
