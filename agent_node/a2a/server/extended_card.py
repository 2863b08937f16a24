"""``GetExtendedAgentCard``: the card with the skills shown only to some callers.

A skill configured with ``card: extended`` is left out of the public card;
the extended card lists it too, and is given to the callers
``policy.extended_card`` names (and operators). The public card says it
exists (``capabilities.extendedAgentCard``; 0.3:
``supportsAuthenticatedExtendedCard``). It is built and signed as the public
card is, once, and served as built: the JSON-RPC binding gives a 0.3 caller
its 0.3 form, REST and gRPC the 1.0 card. A node without one answers as the
operations table's gate says (-32004 in 1.0, -32007 in 0.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict

from agent_node.a2a.protocol.errors import ExtendedAgentCardNotConfigured, PermissionDenied
from agent_node.a2a.protocol.models import GetExtendedAgentCardRequest, WireModel
from agent_node.a2a.server.handler import CallContext
from agent_node.security.authz import Policy

__all__ = ["ExtendedCard", "ServedCard"]


class ServedCard(WireModel):
    """A card as it was built (and signed): its JSON is given back unchanged,
    so that its signature still verifies."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def of(cls, card: Mapping[str, Any]) -> ServedCard:
        return cls.model_validate(dict(card))

    def to_json(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class ExtendedCard:
    """The node's extended card (None: it has none) and who may read it."""

    def __init__(self, card: Mapping[str, Any] | None, policy: Policy) -> None:
        self.card = ServedCard.of(card) if card is not None else None
        self.policy = policy

    async def get(self, request: GetExtendedAgentCardRequest, ctx: CallContext) -> ServedCard:
        if self.card is None:
            raise ExtendedAgentCardNotConfigured()
        if not self.policy.may_read_extended_card(ctx.caller):
            raise PermissionDenied(
                f"{ctx.caller or 'an anonymous caller'} may not read the extended card"
            )
        return self.card
