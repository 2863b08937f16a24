// What the page shows now, shared by its parts.
export const state = {
  view: "overview",
  nodes: [],
  next: null, // the executions list's cursor
  inboxNext: null,
  open: null, // {node, id} of the execution shown
  live: null, // its EventSource
  watched: new Set(), // "node/id" of every task in its tree: a change redraws it
};
