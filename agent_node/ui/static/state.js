// What the page shows now, shared by its parts.
export const state = {
  view: "overview",
  nodes: [],
  looked: false, // whether the nodes have been asked once (the inbox needs their identities)
  next: null, // the executions list's cursor
  listNotes: [], // what the nodes said of the list (errors, notes)
  listed: null, // the filters (as the address holds them) the list shows
  count: null, // how many executions the list's filters select (null: not counted)
  uncounted: [], // nodes whose executions the count leaves out
  link: "connecting", // the page's stream from the UI server: up, down, token
  identities: new Map(), // identity → node key, of every node seen
  down: new Map(), // node → {since (ms), error}: nodes whose stream is lost
  heard: new Set(), // nodes whose stream has come up at least once
  inboxNext: null,
  open: null, // {node, id} of the execution shown
  live: null, // its EventSource
  watched: new Set(), // "node/id" of every task in its tree: a change redraws it
};

// Whether the node `key` is unreachable — its stream is lost, or it did not
// answer the UI server's last look — and since when (ms, as the UI server
// saw it): {since, error}, else null.
export function outageOf(key) {
  const down = state.down.get(key);
  if (down) return down;
  const node = state.nodes.find((n) => n.key === key);
  return node && !node.up ? { since: node.since ? node.since * 1000 : null, error: node.error || "" } : null;
}
