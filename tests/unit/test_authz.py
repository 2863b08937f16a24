"""Authorization policies: who may call which skill, see which task, operate."""

from __future__ import annotations

import pytest

from agent_node.config import PolicySettings
from agent_node.security.authz import Policy

D = "spiffe://example.org/agent"


def policy(**settings: object) -> Policy:
    return Policy.of(PolicySettings.model_validate(settings))


def test_by_default_any_identity_may_call_any_skill_and_nobody_operates() -> None:
    default = policy()
    assert default.may_call("greet", f"{D}/anyone")
    assert not default.may_call("greet", None)  # no identity under TLS: never
    assert not default.is_operator(f"{D}/anyone")


def test_a_skill_rule_replaces_the_callers_and_globs_match_whole_identities() -> None:
    rules = policy(
        callers=[f"{D}/team-*", "plain-cn"],
        skills={"pay": [f"{D}/billing"]},
        operators=["spiffe://example.org/ops/*"],
    )
    assert rules.may_call("greet", f"{D}/team-red")
    assert rules.may_call("greet", "plain-cn")
    assert not rules.may_call("greet", f"{D}/team")
    assert not rules.may_call("greet", "spiffe://evil.org/agent/team-red")
    assert not rules.may_call("greet", f"{D.upper()}/TEAM-RED")  # case-sensitive
    assert rules.may_call("pay", f"{D}/billing")
    assert not rules.may_call("pay", f"{D}/team-red")
    assert rules.is_operator("spiffe://example.org/ops/alice")
    assert not rules.may_call("pay", "spiffe://example.org/ops/alice")  # operators get no skills


def test_a_task_is_seen_by_its_creator_and_operators_only() -> None:
    rules = policy(operators=[f"{D}/ops"])
    assert rules.may_see(f"{D}/bob", f"{D}/bob")
    assert not rules.may_see(f"{D}/bob", f"{D}/alice")
    assert rules.may_see(f"{D}/bob", f"{D}/ops")
    assert not rules.may_see(None, f"{D}/alice")  # made without an identity: operators'
    assert rules.may_see(None, f"{D}/ops")
    assert not rules.may_see(None, None)


def test_the_open_policy_of_a_node_without_tls_allows_everything() -> None:
    open_ = Policy.open()
    assert open_.may_call("x", None) and open_.is_operator(None) and open_.may_see("a", None)


@pytest.mark.parametrize("bad", ["", " ", " x", "x "])
def test_blank_or_padded_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an identity or glob"):
        PolicySettings(callers=[bad])
