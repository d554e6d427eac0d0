"""Login, whoami, logout, versions and media."""

from __future__ import annotations

import pytest
import trio
from structlog.testing import capture_logs

from matrix_client import UnknownTokenError
from matrix_client.testing import FakeHomeserver, FakeUser, Fault


async def test_login_with_fixed_device_then_whoami_and_logout(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.client() as client:
        versions = await client.versions()
        assert versions.supports("v1.11")
        with capture_logs() as logs:
            login = await client.login_password(
                "bot", "password", device_id="SURFACES", device_display_name="Surfaces"
            )
        assert (login.user_id, login.device_id) == (bot.user_id, "SURFACES")
        assert login.access_token not in repr(login)
        assert login.access_token not in repr(client)
        assert all(login.access_token not in str(entry) for entry in logs)
        me = await client.whoami()
        assert (me.user_id, me.device_id) == (bot.user_id, "SURFACES")
        token = client.access_token
        await client.logout()
        assert client.access_token is None
    login_body = hs.requests_to("POST", "/login")[0].body
    assert login_body["device_id"] == "SURFACES"
    assert login_body["identifier"] == {"type": "m.id.user", "user": "bot"}
    async with hs.client(access_token=token) as dead:
        with pytest.raises(UnknownTokenError):
            await dead.whoami()


async def test_whoami_with_given_token_sets_identity(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.client(access_token=bot.access_token) as client:
        assert client.user_id is None
        await client.whoami()
        assert (client.user_id, client.device_id) == (bot.user_id, bot.device_id)


async def test_wrong_password_is_forbidden(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    from matrix_client import MatrixError

    async with hs.client() as client:
        with pytest.raises(MatrixError) as info:
            await client.login_password("bot", "nope", device_id="D")
    assert info.value.errcode == "M_FORBIDDEN"


async def test_upload_download_roundtrip_authenticated(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    data = bytes(range(256)) * 10
    async with hs.user_client(bot) as client:
        mxc = await client.upload(data, content_type="image/png", filename="pic ü.png")
        assert mxc.startswith("mxc://test.local/")
        download = await client.download(mxc)
        config = await client.media_config()
    assert download.data == data
    assert download.content_type == "image/png"
    assert download.filename == "pic ü.png"
    assert config.upload_size == hs.upload_size
    assert hs.requests_to("POST", "/_matrix/media/v3/upload")[0].query == {"filename": "pic ü.png"}
    assert len(hs.requests_to("GET", "/_matrix/client/v1/media/download/*")) == 1
    assert len(hs.requests_to("GET", "/_matrix/client/v1/media/config")) == 1
    assert hs.requests_to("GET", "/_matrix/media/v3/*") == []


async def test_download_falls_back_to_legacy_without_v1_11(
    bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs = FakeHomeserver(versions=["v1.1", "v1.10"])
    user = hs.register("old")
    async with hs.user_client(user) as client:
        mxc = await client.upload(b"hello", content_type="text/plain")
        download = await client.download(mxc)
        config = await client.media_config()
    assert download.data == b"hello"
    assert download.filename is None
    assert config.upload_size == hs.upload_size
    assert len(hs.requests_to("GET", "/_matrix/media/v3/download/*")) == 1
    assert len(hs.requests_to("GET", "/_matrix/media/v3/config")) == 1
    assert hs.requests_to("GET", "/_matrix/client/v1/*") == []
    assert len(hs.requests_to("GET", "/versions")) == 1  # cached


async def test_download_retried_on_502_and_malformed_mxc_rejected(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        mxc = await client.upload(b"x", content_type="text/plain")
        hs.inject("GET", "/media/download/*", Fault.http_status(502))
        assert (await client.download(mxc)).data == b"x"
        with pytest.raises(ValueError, match="mxc"):
            await client.download("https://example.org/x")


async def test_upload_is_not_retried_on_502(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    from matrix_client import MatrixError

    hs.inject("POST", "/upload", Fault.http_status(502))
    async with hs.user_client(bot) as client:
        with pytest.raises(MatrixError):
            await client.upload(b"x", content_type="text/plain")
    assert len(hs.requests_to("POST", "/upload")) == 1


async def test_client_requires_context_manager(hs: FakeHomeserver, bot: FakeUser) -> None:
    client = hs.user_client(bot)
    with pytest.raises(RuntimeError, match="async with"):
        await client.joined_rooms()
