"""A card source: the hand-written part of an Agent Card (a YAML file in
``cards/``, named by the configuration's ``card``).

Its name, description and the words of its skills — which skills exist
comes from the node configuration (:class:`~agent_node.settings.SkillConfig`),
so nothing is written twice; the card is assembled from both
(:mod:`agent_node.a2a.server.card`). Apart from the configuration's sections
because it is a file of its own, read by
:meth:`~agent_node.config.NodeConfig.card_source`. Every model forbids
unknown fields, so a typo is an error naming the field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CardSource", "SkillText"]


class SkillText(BaseModel):
    """How the card describes a skill (the card source's ``skills`` entries)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str | None = None
    tags: list[str] = []
    examples: list[str] = []
    input_modes: list[str] | None = Field(default=None, alias="inputModes")
    output_modes: list[str] | None = Field(default=None, alias="outputModes")


class CardSource(BaseModel):
    """The hand-written part of an Agent Card (a YAML file in ``cards/``).

    Skills are listed by id with their words only; which skills exist comes
    from the node configuration, so nothing is written twice.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    version: str = "1.0.0"
    provider: dict[str, str] | None = None
    documentation_url: str | None = Field(default=None, alias="documentationUrl")
    icon_url: str | None = Field(default=None, alias="iconUrl")
    default_input_modes: list[str] = Field(
        default=["text/plain", "application/json"], alias="defaultInputModes"
    )
    default_output_modes: list[str] = Field(
        default=["text/plain", "application/json"], alias="defaultOutputModes"
    )
    skills: dict[str, SkillText] = {}
