// The view of one execution: loads it, its tree and its log, draws them,
// and follows the text its models write (SSE) while it runs.
import { answerForm, cancel, retry, signalForm } from "./actions.js";
import { $, api, badge, executionPath, firstLine, h, when } from "./dom.js";
import { errorsView, eventsView, graph, notesView, stepsView, timeline, treeTasks, treeView } from "./drawings.js";
import { state } from "./state.js";

export async function loadExecution(first) {
  const open = state.open;
  if (!open) return;
  const root = $("#execution");
  if (first) root.replaceChildren(h("p", { class: "muted", text: "loading…" }));
  const base = executionPath(open.node, open.id);
  let view, tree, events;
  try {
    [view, tree, events] = await Promise.all([api(base), api(`${base}/tree`), api(`${base}/events`)]);
  } catch (error) {
    if (state.open !== open) return;
    // A view already drawn stays, as last known, under what went wrong.
    if (first || !$("#execution .head-section")) root.replaceChildren(h("p", { class: "reach", role: "alert", text: error.message }));
    else markReach(error.message);
    return;
  }
  if (state.open !== open) return;
  state.watched = new Set([`${open.node}/${open.id}`, ...treeTasks(tree)]);
  const keep = first ? null : $("#live-text");
  const parts = [
    header(open.node, view),
    h("div", { class: "grid2" },
      h("section", {}, h("h3", { text: "Workflow" }), h("div", { class: "panel", id: "graph" }, graph(view))),
      h("section", {}, h("h3", { text: "Across agents" }), h("div", { class: "panel", id: "tree" }, treeView(tree)))),
    h("h3", { text: "Timeline" }),
    h("div", { class: "panel", id: "timeline" }, timeline(view)),
    h("h3", { text: "Model text, as written" }),
    keep || h("pre", { class: "live", id: "live-text" }),
    view.errors.length ? h("h3", { text: "Errors" }) : null,
    view.errors.length ? h("div", { class: "panel", id: "errors" }, errorsView(view.errors)) : null,
    view.notes && view.notes.length ? h("h3", { text: "Notes" }) : null,
    view.notes && view.notes.length ? h("div", { class: "panel", id: "notes" }, notesView(view.notes)) : null,
    h("h3", { text: "State, node by node" }),
    h("div", { class: "panel", id: "steps" }, stepsView(view)),
    h("h3", { text: `Event log (${events.events.length})` }),
    h("div", { class: "panel", id: "events" }, eventsView(events.events)),
  ];
  root.replaceChildren(h("p", { id: "execution-reach", class: "banner", role: "alert", hidden: true }), ...parts.filter(Boolean));
  markReach();
  if (first) {
    followLive(open, view);
    const heading = $("#execution .head h2");
    heading.tabIndex = -1;
    heading.focus();
  }
}

// Whether the open view's node is heard: when not, the view says since when,
// shows what was last known, and offers no action (it could not reach it).
export function markReach(failed) {
  const open = state.open;
  const banner = $("#execution-reach");
  if (!open || !banner) return;
  const down = state.down.get(open.node);
  const lost = down || (failed ? { since: Date.now(), error: failed } : null);
  banner.hidden = !lost;
  if (lost) {
    const since = new Date(lost.since).toLocaleTimeString();
    banner.textContent = `node ${open.node} is unreachable since ${since}; last known state below${lost.error ? ` (${firstLine(lost.error)})` : ""}`;
  }
  for (const control of document.querySelectorAll("#execution .actions button, #execution .actions input, #execution .actions textarea")) {
    control.disabled = Boolean(lost);
  }
}



function header(node, view) {
  const waits = view.current.waits;
  const terminal = ["completed", "failed", "canceled"].includes(view.status);
  const actions = h("div", { class: "actions" });
  if (view.question) actions.append(answerForm(node, view.id, view.question));
  for (const wait of waits.filter((w) => w.kind === "event")) actions.append(signalForm(node, view.id, wait));
  if (!terminal) actions.append(h("button", { class: "danger", type: "button", onclick: () => cancel(node, view.id) }, "Cancel"));
  if (view.status === "failed" || view.status === "canceled") {
    actions.append(h("button", { class: "quiet", type: "button", onclick: () => retry(node, view.id) }, "Retry"));
  }
  const usage = view.usage.total;
  return h(
    "section",
    { class: "head-section" },
    h("div", { class: "head" }, h("h2", {}, `${view.workflow}@${view.version} `, h("span", { class: "id", text: view.id })), badge(view.status)),
    h("dl", { class: "facts" },
      h("dt", { text: "node" }), h("dd", { text: node }),
      view.skill ? h("dt", { text: "skill" }) : null,
      view.skill ? h("dd", { class: "skill", text: view.skill }) : null,
      h("dt", { text: "caller" }), h("dd", { class: "caller", text: view.caller || "—" }),
      h("dt", { text: "context" }), h("dd", { text: view.context_id || "—" }),
      h("dt", { text: "created" }), h("dd", { text: when(view.created_at) }),
      h("dt", { text: "updated" }), h("dd", { text: when(view.updated_at) }),
      h("dt", { text: "now" }), h("dd", { text: describeCurrent(view) }),
      usage.calls ? h("dt", { text: "models" }) : null,
      usage.calls ? h("dd", { text: `${usage.calls} calls · ${usage.tokens} tokens · ${usage.cost === null ? "no price" : `$${usage.cost.toFixed(4)}`}` }) : null,
      view.error ? h("dt", { text: "error" }) : null,
      view.error ? h("dd", { class: "reach", title: view.error, text: firstLine(view.error) }) : null),
    view.question ? h("p", { class: "question" }, h("strong", { text: "asks: " }), view.question.text) : null,
    actions,
  );
}

function describeCurrent(view) {
  const parts = view.current.work.map((w) => `${w.node}#${w.visit} ${w.leased ? "running" : "ready"}`);
  for (const wait of view.current.waits) {
    const what = wait.event && wait.event !== wait.kind ? `${wait.kind} “${wait.event}”` : wait.kind;
    parts.push(`${wait.node}#${wait.visit} waits for ${what}`);
  }
  return parts.join(", ") || "—";
}

// The text the execution's model nodes write, as they write it.
function followLive(open, view) {
  const into = $("#live-text");
  if (["completed", "failed", "canceled"].includes(view.status)) {
    into.textContent = "(the execution has ended; its answers are in the state and the log)";
    return;
  }
  const texts = new Map();
  const source = new EventSource(`${executionPath(open.node, open.id)}/live`);
  state.live = source;
  const draw = () => {
    const target = $("#live-text") || into;
    target.textContent = [...texts.entries()].map(([stream, t]) => `[${stream.split("-").slice(-2).join(" #")}] ${t}`).join("\n\n");
  };
  source.addEventListener("chunk", (event) => {
    const chunk = JSON.parse(event.data);
    texts.set(chunk.stream, (chunk.append ? texts.get(chunk.stream) || "" : "") + chunk.text);
    draw();
  });
  for (const name of ["end", "overflow", "bye", "error"]) {
    source.addEventListener(name, () => {
      source.close();
      if (state.live === source) state.live = null;
    });
  }
}

export function stopLive() {
  if (state.live) state.live.close();
  state.live = null;
}
