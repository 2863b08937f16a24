"""The A2A wire contract: what travels, in both protocol generations.

* :mod:`.models`: the A2A 1.0 wire objects (tasks, messages, parts, requests
  and responses), named and shaped as ``specification/a2a.proto`` in its
  ProtoJSON mapping; :mod:`.card_models`: the Agent Card's.
* :mod:`.compat`, :mod:`.compat_card`: A2A 0.3 <-> 1.0 conversion of plain
  JSON; :mod:`.models_v03`, :mod:`.card_models_v03`: the 0.3 objects, for the
  0.3 schemas and for tests that check what ``compat`` writes (the node
  speaks 0.3 through ``compat``).
* :mod:`.errors`: the one table of protocol errors, for every binding.
* :mod:`.schemas`: JSON Schemas of the 1.0 and 0.3 objects, kept in
  ``protocols/``.
* :mod:`.card_payload`, :mod:`.jcs`, :mod:`.jws`: what a card's signature
  covers (§8.4.1), RFC 8785 canonical JSON and compact/detached JWS.

A leaf: it imports nothing of the node but :mod:`agent_node.errors`.
"""
