"""Security at the edges: the development PKI, TLS contexts and peer identity.

* ``agent_node.security.pki``: ``agent-node certs`` — a dev CA and node certificates.
* ``agent_node.security.tls``: server and client SSL contexts for mutual TLS,
  and the identity a peer certificate names.
"""
