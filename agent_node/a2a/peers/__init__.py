"""The node as a client of other agents.

* :mod:`.client`: the HTTP client over mutual TLS, checking the peer's
  identity at the handshake; :mod:`.endpoints`: which origins a peer's card
  may send us to.
* :mod:`.discovery`, :mod:`.directory`: peers' cards, fetched, verified
  (:mod:`.signing`, :mod:`.card_keys`) and kept.
* :mod:`.delegator`: the delegation state machine's sends, relays and
  cancels; :mod:`.watchdog`: what drives it when nothing else does;
  :mod:`.push_receiver` (with :mod:`.push_tokens`): peers' pushes;
  :mod:`.peer_errors`: peers' failures as our callers see them.
"""
