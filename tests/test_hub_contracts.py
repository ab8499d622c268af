"""The hub's contracts that are code: message ids and conversations (docs/protocol.rst "History")."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial import unittest

from msgsvc.hub.contracts import Kind, Refusal, Refused
from msgsvc.hub.conversations import ALL, conversation_key, conversation_named, participants
from msgsvc.hub.ids import (
    MessageIds,
    message_id,
    message_id_floor,
    message_id_text,
    message_id_time,
    message_id_value,
)

# 2026-12-02T08:14:03.116Z
WHEN = 1796199243.116


def counting(start: int) -> MessageIds:
    """Ids on a clock at WHEN whose random bits are ``start`` (80 bits, before the maker clears the top)."""
    clock = Clock()
    clock.advance(WHEN)
    return MessageIds(clock, lambda n: start.to_bytes(n, "big"))


class MessageIdTests(unittest.TestCase):
    def test_an_id_is_26_characters_of_crockford_base_32_with_its_time(self) -> None:
        made, at = counting(0).make()
        self.assertEqual(len(made), 26)
        self.assertEqual(message_id(made), made)
        self.assertEqual(message_id(made.lower()), made)
        self.assertEqual(at, 1796199243.116)
        self.assertEqual(message_id_time(made), at)

    def test_an_id_is_its_millisecond_then_its_count_digit_by_digit(self) -> None:
        low = 0xFEDCBA9876543210 << 10 | 1022  # its last two digits wrap round at the third id
        ids = counting(low << 1)
        for count in range(3):
            value = 1796199243116 << 80 | low + count
            digits = "".join("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(value >> s) & 31] for s in range(125, -1, -5))
            self.assertEqual(ids.make()[0], digits)

    def test_ids_of_one_millisecond_count_on_from_random_bits(self) -> None:
        ids = counting((1 << 80) - 1)  # the top bit is cleared: room to count on
        first, second = ids.make()[0], ids.make()[0]
        self.assertLess(first, second)
        self.assertEqual(message_id_time(first), message_id_time(second))

    def test_ids_grow_with_time_and_never_go_back_with_the_clock(self) -> None:
        clock = Clock()
        clock.advance(WHEN)
        ids = MessageIds(clock, lambda n: b"\xff" * n)
        made = [ids.make()]
        clock.advance(0.001)
        made.append(ids.make())
        clock.rightNow -= 5  # the clock is stepped back
        made.append(ids.make())
        self.assertEqual(sorted(made), made)
        self.assertEqual(made[2][1], made[1][1])  # held at the latest millisecond

    def test_a_time_is_a_position_between_milliseconds(self) -> None:
        made, at = counting(12345).make()
        self.assertLessEqual(message_id_floor(at), made)
        self.assertLess(made, message_id_floor(at + 0.001))
        self.assertEqual(message_id_time(message_id_floor(at)), at)

    def test_an_id_is_its_128_bits_in_the_same_order(self) -> None:
        made = [counting(start).make()[0] for start in (0, 1, 1 << 64, (1 << 80) - 1)]
        made += [message_id_floor(0.0), "7" + "Z" * 25]
        values = [message_id_value(id) for id in made]
        self.assertEqual([message_id_text(value) for value in values], made)
        self.assertEqual(sorted(values), [message_id_value(id) for id in sorted(made)])
        self.assertEqual((values[-2], values[-1]), (0, (1 << 128) - 1))
        self.assertEqual(values[0] >> 80, round(WHEN * 1000))

    def test_what_is_not_an_id(self) -> None:
        made = counting(0).make()[0]
        for text in ("", made[:-1], made + "0", "8" + made[1:], made[:-1] + "U", "*"):
            self.assertIsNone(message_id(text), text)


class ConversationTests(unittest.TestCase):
    def test_a_direct_conversation_is_its_participants_sender_included(self) -> None:
        self.assertEqual(conversation_key("Bob", Kind.UNICAST, ("alice",)), "alice,bob")
        self.assertEqual(conversation_key("alice", Kind.MULTICAST, ("Bob", "alice")), "alice,bob")
        self.assertEqual(conversation_key("carol", Kind.MULTICAST, ("bob", "alice")), "alice,bob,carol")
        self.assertEqual(conversation_key("alice", Kind.UNICAST, ("alice",)), "alice")
        self.assertEqual(conversation_key("Alice", Kind.UNICAST, ("BOB",)), "alice,bob")
        self.assertEqual(conversation_key("ALICE", Kind.MULTICAST, ("alice",)), "alice")
        self.assertEqual(participants("alice,bob,carol"), ("alice", "bob", "carol"))

    def test_broadcasts_are_all_and_a_message_to_nobody_in_the_log_is_nowhere(self) -> None:
        self.assertEqual(conversation_key("alice", Kind.BROADCAST, ()), ALL)
        self.assertEqual(participants(ALL), ())
        self.assertIsNone(conversation_key("alice", Kind.UNICAST, ()))

    def test_a_client_names_a_conversation_it_takes_part_in(self) -> None:
        self.assertEqual(conversation_named("Bob", "alice", 32), "alice,bob")
        self.assertEqual(conversation_named("bob,ALICE,bob", "alice", 32), "alice,bob")
        self.assertEqual(conversation_named("alice", "alice", 32), "alice")
        self.assertEqual(conversation_named("#ALL", "alice", 32), ALL)

    def test_a_conversation_named_wrong_is_refused(self) -> None:
        for text, refusal in (
            ("bob,,carol", Refusal.RECIPIENT_INVALID),
            ("#random", Refusal.RECIPIENT_INVALID),
            ("b,c,d", Refusal.TOO_MANY_RECIPIENTS),
        ):
            with self.assertRaises(Refused) as caught:
                conversation_named(text, "alice", 2)
            self.assertEqual(caught.exception.refusal, refusal, text)
        self.assertEqual(conversation_named("alice,b,c", "alice", 2), "alice,b,c")

    def test_a_room_is_a_conversation_for_a_client_that_knows_rooms(self) -> None:
        self.assertEqual(conversation_named("#Dev", "alice", 2, rooms=True), "#dev")
        self.assertEqual(conversation_named("#ALL", "alice", 2, rooms=True), ALL)
        with self.assertRaises(Refused) as caught:
            conversation_named("#9", "alice", 2, rooms=True)
        self.assertEqual(caught.exception.refusal, Refusal.ROOM_INVALID)
        self.assertEqual(conversation_key("bob", Kind.ROOM, ("#Dev",)), "#dev")


class RoomNameTests(unittest.TestCase):
    def test_a_room_is_a_hash_and_a_username(self) -> None:
        from msgsvc.hub.rules import is_valid_room, room_key, room_name

        for name in ["#dev", "#D", "#a.b-c_9", "#" + "x" * 32, "#all"]:
            self.assertTrue(is_valid_room(name), name)
            self.assertEqual(room_name(name), name)
        for name in ["dev", "#", "#9a", "##dev", "#" + "x" * 33, "#de v", "#dév", "#_a", "", "#dev,#ops"]:
            self.assertFalse(is_valid_room(name), name)
            with self.assertRaises(Refused) as caught:
                room_name(name)
            self.assertEqual(caught.exception.refusal, Refusal.ROOM_INVALID)
        self.assertEqual(room_key("#Dev"), room_key("#dEV"))
        self.assertEqual(room_key("#Dev"), "#dev")


class BanMaskTests(unittest.TestCase):
    def test_a_mask_is_completed_as_irc_servers_do_and_what_is_none_refused(self) -> None:
        from msgsvc.hub.rules import MASK_MAX, ban_mask

        completed = {
            "bob": "bob!*@*",
            "bob!*": "bob!*@*",
            "Bob!b": "Bob!b@*",
            "b@192.0.2.*": "*!b@192.0.2.*",
            "*!*@msgsvc": "*!*@msgsvc",
            "b?b!~x@h": "b?b!~x@h",
            "!@": "*!*@*",
        }
        self.assertEqual({text: ban_mask(text) for text in completed}, completed)
        for text in ["", "a b", "a,b", "a\x01", "a!b!c", "a!b@c@d", "x" * (MASK_MAX + 1)]:
            self.assertIsNone(ban_mask(text), text)

    def test_a_mask_matches_with_stars_and_question_marks_in_ascii_case(self) -> None:
        from msgsvc.hub.rules import mask_key, mask_matches

        def matches(mask: str, identity: str) -> bool:
            return mask_matches(mask_key(mask), mask_key(identity))

        self.assertTrue(matches("bob!*@*", "BOB!bob@msgsvc"))
        self.assertFalse(matches("bob!*@*", "bobby!bob@msgsvc"))
        self.assertTrue(matches("b?b*!*@*", "bib2!x@msgsvc"))
        self.assertFalse(matches("b?b!*@*", "bb!x@msgsvc"))
        self.assertTrue(matches("*!*@192.0.2.*", "eve!eve@192.0.2.7"))
        self.assertFalse(matches("*!*@192.0.2.*", "eve!eve@198.51.100.7"))
        self.assertTrue(matches("*!~X.Y@*", "eve!~x.y@msgsvc"))  # '.' is itself, not any character
        self.assertFalse(matches("*!x.y@*", "eve!xzy@msgsvc"))
        # A regular expression's backtracking took 1.4 s with 6 stars, minutes with 8, at each JOIN and SEND.
        self.assertFalse(matches("*a" * 40 + "*b!*@*", "a" * 31 + "!" + "a" * 31 + "@msgsvc"))
        self.assertEqual(mask_key("Bob!X@Host"), "bob!x@host")
        self.assertEqual(mask_key("É!*@*"), "É!*@*")  # CASEMAPPING=ascii folds A-Z only
