"""``agent-node ui``: a local web page over a network of agent nodes.

Why a server of its own, and not a page served by each node: the nodes
speak mutual TLS and a browser has no client certificate (nor should it
hold one). So a small Starlette app on the loopback address (:mod:`.server`)
serves the page and stands for the person in front of it: it is an
operator identity toward each configured node (:mod:`.targets`), and makes
on the page's behalf a fixed set of calls to the nodes' operator API and
A2A endpoint (:mod:`.calls`) — never an open proxy. The page (``static/``:
plain HTML, CSS and hand-written JavaScript modules the browser loads as
they are, inline SVG) talks to this
server only, on its own origin, and holds no secret; :mod:`.guard` keeps
other sites and DNS rebinding out.
"""
