"""The independent E2EE user (``nio_user.py``) against the real Synapse, without the bot.

What the encrypted e2e tests of the bot will rely on: two nio users in an encrypted
room read each other's text and files, what crossed the server was ciphertext (with
``m.relates_to`` in clear beside it), a tampered file is refused, and a device that
logs in later decrypts the next message.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import pytest
import trio
from nio.exceptions import EncryptionError
from nio_user import MEGOLM, NioError, NioUser, Received

from matrix_client.testing import LocalSynapse, RegisteredUser

pytestmark = pytest.mark.synapse

STEP_S = 20  # one exchange (send, sync, decrypt) takes well under a second here


@asynccontextmanager
async def nio_login(
    hs: LocalSynapse, account: RegisteredUser, device_id: str, tmp_path: Path
) -> AsyncIterator[NioUser]:
    store = tmp_path / f"{account.localpart}-{device_id}"
    login = NioUser.login(
        hs.base_url, account.user_id, account.password, device_id=device_id, store_dir=store
    )
    async with AsyncExitStack() as stack:
        with trio.fail_after(STEP_S):  # the login only, not the test's body
            user = await stack.enter_async_context(login)
        yield user


@attrs.frozen
class Pair:
    """Alice and Bob (one device each) in Alice's encrypted room, both sides knowing it."""

    alice: NioUser
    bob: NioUser
    alice_account: RegisteredUser
    bob_account: RegisteredUser
    room: str


@asynccontextmanager
async def alice_and_bob(
    hs: LocalSynapse, make_user, tmp_path: Path, *, bob_device: str = "BOB1"
) -> AsyncIterator[Pair]:
    alice_account, bob_account = await make_user("alice"), await make_user("bob")
    async with (
        nio_login(hs, alice_account, "ALICE1", tmp_path) as alice,
        nio_login(hs, bob_account, bob_device, tmp_path) as bob,
    ):
        with trio.fail_after(STEP_S):
            room = await alice.create_room(invite=[bob.user_id], name="secret")
            assert await bob.wait_invite(room) == room
            await bob.join(room)
            await alice.wait_joined(room, bob.user_id)
        yield Pair(alice, bob, alice_account, bob_account, room)


async def raw_event(hs: LocalSynapse, account: RegisteredUser, room: str, event_id: str) -> Any:
    """The event as the server stores and serves it."""
    url = f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
    headers = {"Authorization": f"Bearer {account.access_token}"}
    async with httpx.AsyncClient(base_url=hs.base_url, headers=headers) as http:
        with trio.fail_after(STEP_S):
            response = await http.get(url)
    assert response.status_code == 200, response.text
    return response.json()


def is_file(message: Received) -> bool:
    return message.msgtype == "m.file"


async def test_two_users_exchange_encrypted_text_and_files_both_ways(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with alice_and_bob(synapse, make_user, tmp_path) as pair:
        alice, bob, room = pair.alice, pair.bob, pair.room

        with trio.fail_after(STEP_S):
            hello_id = await alice.send_text(room, "hello, Bob")
            hello = await bob.wait_message(room, sender=alice.user_id)
        assert (hello.body, hello.encrypted, hello.event_id) == ("hello, Bob", True, hello_id)
        wire = await raw_event(synapse, pair.bob_account, room, hello_id)
        assert wire["type"] == "m.room.encrypted"
        assert wire["content"]["algorithm"] == MEGOLM
        assert "hello" not in str(wire["content"])

        thread = {"rel_type": "m.thread", "event_id": hello_id}
        with trio.fail_after(STEP_S):
            answer_id = await bob.send_text(room, "hi, Alice", relates_to=thread)
            answer = await alice.wait_message(room, sender=bob.user_id)
        assert (answer.body, answer.encrypted) == ("hi, Alice", True)
        assert answer.relates_to == thread
        wire = await raw_event(synapse, pair.alice_account, room, answer_id)
        assert wire["type"] == "m.room.encrypted"
        assert wire["content"]["m.relates_to"] == thread  # in clear, beside the ciphertext

        notes = b"Alice's notes: buy milk.\n" * 100
        with trio.fail_after(STEP_S):
            await alice.send_file(room, notes, filename="notes.txt")
            got = await bob.wait_message(room, sender=alice.user_id, match=is_file)
            assert got.encrypted
            assert "url" not in got.content  # the media URL is inside the `file` JWK object
            assert got.content["file"]["v"] == "v2"
            assert await bob.download(got) == notes

        report = bytes(range(256)) * 40
        with trio.fail_after(STEP_S):
            await bob.send_file(room, report, filename="report.bin", mimetype="application/x-bin")
            back = await alice.wait_message(room, sender=bob.user_id, match=is_file)
            assert back.body == "report.bin"
            assert await alice.download(back) == report

        # The SHA-256 of the ciphertext is checked: a wrong hash is refused.
        file = dict(back.content["file"], hashes={"sha256": "A" * 43})
        tampered = attrs.evolve(back, content={**back.content, "file": file})
        with trio.fail_after(STEP_S), pytest.raises(EncryptionError):
            await alice.download(tampered)


async def test_a_second_device_that_logs_in_later_decrypts_the_next_message(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with alice_and_bob(synapse, make_user, tmp_path, bob_device="BOBLAPTOP") as pair:
        alice, laptop, room, bob_account = pair.alice, pair.bob, pair.room, pair.bob_account
        with trio.fail_after(STEP_S):
            await alice.send_text(room, "before the phone")
            assert (await laptop.wait_message(room, sender=alice.user_id)).body == (
                "before the phone"
            )

        async with nio_login(synapse, bob_account, "BOBPHONE", tmp_path) as phone:
            with trio.fail_after(STEP_S):
                await alice.wait_device(bob_account.user_id, "BOBPHONE")
                assert await alice.devices(bob_account.user_id) == {"BOBLAPTOP", "BOBPHONE"}
                await alice.send_text(room, "after the phone")

                def after(message: Received) -> bool:
                    return message.body == "after the phone"

                on_phone = await phone.wait_message(room, sender=alice.user_id, match=after)
                on_laptop = await laptop.wait_message(room, sender=alice.user_id, match=after)
        assert on_phone.encrypted
        assert on_laptop.encrypted
        assert on_phone.event_id == on_laptop.event_id


def nio_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nio-")]


async def test_a_cancelled_wait_and_a_failed_login_leave_no_thread_behind(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    account = await make_user("carol")
    async with nio_login(synapse, account, "CAROL1", tmp_path) as carol:
        assert nio_threads() == [f"nio-{account.user_id}-CAROL1"]
        room = await carol.create_room(name="alone")
        with trio.move_on_after(1.5) as waiting:  # nobody else is here: nothing comes
            await carol.wait_message(room, sender="@nobody:localhost")
        assert waiting.cancelled_caught
        with trio.fail_after(STEP_S):  # the client still works after the cancelled call
            await carol.send_text(room, "still here")
            mine = await carol.wait_message(room, sender=account.user_id)
        assert (mine.body, mine.encrypted) == ("still here", True)
    assert nio_threads() == []

    wrong = attrs.evolve(account, password="not-the-password")
    with pytest.raises(NioError, match="login"):
        async with nio_login(synapse, wrong, "CAROL2", tmp_path):
            pytest.fail("logged in with a wrong password")
    assert nio_threads() == []
