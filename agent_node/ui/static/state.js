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
