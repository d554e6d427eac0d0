"""The trust rule: which Matrix state the bot believes about its own rooms.

Room state is written by whoever may write it: any user can create a room, put an
``org.lambda.surfaces.chat`` event in it naming someone else's agent and platform
chat id, and invite the bot. Reconciliation (``reconcile``) and the adoption of a
room whose creation response was lost (``Rooms._find_room``) used to take such
content as it was (issue 13 §1). Now the bot believes only what it wrote itself:

* **a Space binding** counts when its ``org.lambda.surfaces.space`` event was sent by
  the bot, in a room the bot created, that is a Space;
* **a chat binding** counts when its ``org.lambda.surfaces.chat`` event was sent by
  the bot, in a room the bot created, and the owner's Space (a Space binding that
  counts, for the same owner) lists the room through an ``m.space.child`` event the
  bot sent (state key = the room id; the content may be empty: ``!archive`` unlinks
  a chat but the event stays the bot's). While a lost creation response is being
  recovered the Space has not been linked yet; then the room's own bot-sent
  ``m.space.parent`` must name the owner's Space instead (:meth:`RoomFacts.chat_for`).

"Created by the bot": the ``m.room.create`` event's sender is the bot — room
versions 11+ have no ``creator`` field (MSC2175), older ones must name the bot there
too. The homeserver fills in ``sender`` from the access token, so no user can forge
it. Everything else a binding holds is still validated by the codec
(``surfaces.core.binding``) and, for ids that must be unique, by the store.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from matrix_client import MatrixClient, RoomEvent
from surfaces.core import CHAT_EVENT, SPACE_EVENT, ChatBinding, SpaceBinding

CREATE_EVENT = "m.room.create"
SPACE_CHILD = "m.space.child"
SPACE_PARENT = "m.space.parent"
SPACE_TYPE = "m.space"


class Distrust(enum.StrEnum):
    """Why a binding found in a room does not count (logged with the room id)."""

    NOT_BOT_SENT = "binding_not_sent_by_the_bot"
    NOT_BOT_CREATED = "room_not_created_by_the_bot"
    MALFORMED = "binding_malformed"
    NOT_A_SPACE = "space_binding_in_a_non_space_room"
    NOT_LISTED = "chat_not_listed_in_the_owners_space"


@attrs.frozen
class RoomFacts:
    """What one room's state says, as far as the bot may believe it.

    ``chat`` / ``space`` are bindings the bot sent in a room it created (else
    None, with the reason in ``distrust``); ``children`` / ``parents`` are the
    state keys of the ``m.space.child`` / ``m.space.parent`` events the bot sent.
    ``created_ts`` orders rooms deterministically when two claim the same thing.
    """

    room_id: str
    bot_created: bool
    is_space: bool
    created_ts: int
    chat: ChatBinding | None = None
    space: SpaceBinding | None = None
    children: frozenset[str] = frozenset()
    parents: frozenset[str] = frozenset()
    distrust: Distrust | None = None

    @classmethod
    def from_state(cls, room_id: str, events: Iterable[RoomEvent], bot: str) -> RoomFacts:
        state = {(e.type, e.state_key): e for e in events if e.state_key is not None}
        create = state.get((CREATE_EVENT, ""))
        bot_created = create is not None and _created_by(create, bot)
        is_space = create is not None and create.content.get("type") == SPACE_TYPE
        created_ts = create.origin_server_ts if create is not None else 0
        children = frozenset(
            key for (kind, key), e in state.items() if kind == SPACE_CHILD and e.sender == bot
        )
        parents = frozenset(
            key for (kind, key), e in state.items() if kind == SPACE_PARENT and e.sender == bot
        )
        facts = cls(room_id, bot_created, is_space, created_ts, None, None, children, parents)
        chat_event = state.get((CHAT_EVENT, ""))
        space_event = state.get((SPACE_EVENT, ""))
        if chat_event is not None:
            return facts._with_chat(chat_event, bot)
        if space_event is not None:
            return facts._with_space(space_event, bot)
        return facts

    def _refused(self, why: Distrust) -> RoomFacts:
        return attrs.evolve(self, distrust=why)

    def _not_the_bots(self, event: RoomEvent, bot: str) -> Distrust | None:
        if event.sender != bot:
            return Distrust.NOT_BOT_SENT
        if not self.bot_created:
            return Distrust.NOT_BOT_CREATED
        return None

    def _with_chat(self, event: RoomEvent, bot: str) -> RoomFacts:
        if why := self._not_the_bots(event, bot):
            return self._refused(why)
        chat = ChatBinding.from_content(event.content)
        if chat is None or self.is_space:
            return self._refused(Distrust.MALFORMED)
        return attrs.evolve(self, chat=chat)

    def _with_space(self, event: RoomEvent, bot: str) -> RoomFacts:
        if why := self._not_the_bots(event, bot):
            return self._refused(why)
        if not self.is_space:
            return self._refused(Distrust.NOT_A_SPACE)
        space = SpaceBinding.from_content(event.content)
        if space is None:
            return self._refused(Distrust.MALFORMED)
        return attrs.evolve(self, space=space)

    def lists(self, chat: RoomFacts) -> bool:
        """This room is the chat owner's Space and the bot linked the chat into it."""
        return (
            self.space is not None
            and chat.chat is not None
            and self.space.owner == chat.chat.owner
            and chat.room_id in self.children
        )

    def chat_for(self, owner: str, space_id: str | None) -> ChatBinding | None:
        """The chat binding of ``owner`` in this room, for adopting a room whose
        creation response was lost (the Space link is written only after that): the
        bot's binding, the bot's room, and the bot's ``m.space.parent`` naming the
        owner's Space (when the owner has one)."""
        if self.chat is None or self.chat.owner != owner:
            return None
        if space_id is not None and space_id not in self.parents:
            return None
        return self.chat


async def read_room(matrix: MatrixClient, room_id: str, bot: str) -> RoomFacts:
    """The room's full state (events with their senders) → :class:`RoomFacts`.

    ``GET /state/{type}`` returns content only, which cannot say who wrote it."""
    return RoomFacts.from_state(room_id, await matrix.get_state(room_id), bot)


def oldest_first(rooms: Iterable[RoomFacts]) -> list[RoomFacts]:
    """A deterministic order for conflicts: the older room (then the smaller id) wins."""
    return sorted(rooms, key=lambda f: (f.created_ts, f.room_id))


def _created_by(create: RoomEvent, bot: str) -> bool:
    if create.sender != bot:
        return False
    creator = create.content.get("creator")
    return creator is None or creator == bot
