"""Which peer a delegation goes to, and where its task is reached later.

A delegation names its peer, or a skill or tag that the first configured
peer whose card offers it takes (:func:`resolve_peer`, at the send). Once
sent, its task is reached at the peer's current card when that is still
the same identity — a peer may have moved since (a redeploy, a new port) —
else at the endpoint the task was sent to, from the row alone
(:func:`reach_peer`). Apart from :mod:`.delegator`, which makes the calls,
because it is the choice of a card, not a call.
"""

from __future__ import annotations

import dataclasses

from agent_node.a2a.peers.directory import Directory
from agent_node.a2a.peers.discovery import PeerCard, PeerUnavailable
from agent_node.a2a.peers.endpoints import spoken
from agent_node.a2a.peers.peer_errors import PeerError, unavailable
from agent_node.errors import ConfigError
from agent_node.nodes.delegate import Delegation
from agent_node.store.records import DelegationRecord

__all__ = ["reach_peer", "resolve_peer"]


async def resolve_peer(
    directory: Directory, delegation: Delegation, row: DelegationRecord
) -> PeerCard:
    """The peer's card: the one named, or the first whose card offers the
    skill or tag (an unreachable peer may: then try again later)."""
    try:
        if delegation.peer is not None:
            return await directory.card(delegation.peer)
        if row.peer and directory.knows(row.peer):
            return await directory.card(row.peer)  # chosen by an earlier try
        found = await directory.all()
    except PeerUnavailable as exc:
        raise unavailable(exc) from None
    except ConfigError as exc:
        raise PeerError(str(exc), transient=False) from None
    unreachable = [f for f in found if isinstance(f, PeerUnavailable)]
    for card in found:
        if isinstance(card, PeerCard) and card.has(skill=delegation.skill, tag=delegation.tag):
            return card
    wanted = " and ".join(
        f"{label} {value!r}"
        for label, value in (("skill", delegation.skill), ("tag", delegation.tag))
        if value
    )
    if unreachable:
        names = ", ".join(repr(f.peer) for f in unreachable)
        raise PeerError(f"no reachable peer offers {wanted} ({names} unreachable)", transient=True)
    raise PeerError(f"no configured peer offers {wanted}", transient=False)


async def reach_peer(directory: Directory, row: DelegationRecord) -> PeerCard:
    """Where the peer's task is reached now. A configured peer may have
    moved since the task was sent (a redeploy, a new port): its current
    card is used when it is the same identity. Otherwise, or when its card
    cannot be had, the endpoint the task was sent to."""
    known = directory.knows(row.peer)
    if not row.endpoint and not known:
        raise PeerError(f"peer {row.peer!r} is not configured any more", transient=False)
    if not known:
        return _card_of(row)
    try:
        card = await directory.card(row.peer)
    except PeerUnavailable as exc:
        if not row.endpoint:
            raise unavailable(exc) from None
        return _card_of(row)
    if row.identity is not None and card.identity not in (None, row.identity):
        return _card_of(row) if row.endpoint else card
    return dataclasses.replace(card, identity=row.identity or card.identity)


def _card_of(row: DelegationRecord) -> PeerCard:
    """Enough of a card to call the endpoint a delegation was sent to."""
    binding, version = spoken(row.version)
    return PeerCard(
        name=row.peer,
        base_url=row.endpoint,
        card={},
        endpoint=row.endpoint,
        version=version,
        identity=row.identity,
        etag=None,
        fetched_at=row.sent_at,
        expires_at=row.sent_at,
        signed_by=None,
        card_url=row.endpoint,
        binding=binding,
    )
