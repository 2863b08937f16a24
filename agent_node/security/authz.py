"""Authorization: what a caller's certificate identity lets it do.

A :class:`Policy` answers three questions, from ``policy:`` in the node
configuration (:class:`~agent_node.config.PolicySettings`):

* may this identity call this skill? (per skill, else ``callers``; being
  an operator does not add skills)
* is it an operator? (the operator API, and every task)
* may it see this task? A task belongs to the identity that created it:
  only that caller and operators may read, continue, cancel, subscribe to
  it or set its push configs. Tasks created without an identity (by
  ``agent-node run``, say) belong to operators.

Patterns are identities or shell-style globs over them, matched case-
sensitively (``spiffe://example.org/agent/*``; ``*`` is anyone the trust
bundle vouches for). A node without TLS has no identities: its policy is
:meth:`Policy.open`, which allows everything — plain HTTP is for loopback
development only (``--insecure-dev``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent_node.config import PolicySettings

__all__ = ["Policy"]


@dataclass(frozen=True)
class _Patterns:
    exact: frozenset[str] = frozenset()
    globs: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, patterns: Iterable[str]) -> _Patterns:
        exact: set[str] = set()
        globs = []
        for pattern in patterns:
            if any(c in pattern for c in "*?["):
                globs.append(re.compile(fnmatch.translate(pattern)))
            else:
                exact.add(pattern)
        return cls(frozenset(exact), tuple(globs))

    def match(self, identity: str) -> bool:
        return identity in self.exact or any(g.match(identity) for g in self.globs)


@dataclass(frozen=True)
class Policy:
    """Who may do what (see the module doc). Immutable; build it once per node."""

    callers: _Patterns = _Patterns()
    skills: Mapping[str, _Patterns] = field(default_factory=dict)
    operators: _Patterns = _Patterns()
    #: Who may read the extended Agent Card.
    extended_card: _Patterns = _Patterns()
    #: No identities exist (plain HTTP): everything is allowed.
    enforced: bool = True

    @classmethod
    def of(cls, settings: PolicySettings) -> Policy:
        return cls(
            callers=_Patterns.of(settings.callers),
            skills={skill: _Patterns.of(ids) for skill, ids in settings.skills.items()},
            operators=_Patterns.of(settings.operators),
            extended_card=_Patterns.of(settings.extended_card),
        )

    @classmethod
    def open(cls) -> Policy:
        """The policy of a node without TLS: nobody has an identity to check."""
        return cls(enforced=False)

    def may_call(self, skill: str, caller: str | None) -> bool:
        if not self.enforced:
            return True
        if caller is None:
            return False
        return self.skills.get(skill, self.callers).match(caller)

    def is_operator(self, caller: str | None) -> bool:
        if not self.enforced:
            return True
        return caller is not None and self.operators.match(caller)

    def may_read_extended_card(self, caller: str | None) -> bool:
        if not self.enforced:
            return True
        return caller is not None and (
            self.extended_card.match(caller) or self.operators.match(caller)
        )

    def may_see(self, owner: str | None, caller: str | None) -> bool:
        """Whether ``caller`` may use a task created by ``owner``."""
        if not self.enforced:
            return True
        if caller is not None and caller == owner:
            return True
        return self.is_operator(caller)
