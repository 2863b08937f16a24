// One execution drawn from what /ops/executions/{id} and its tree say: the
// workflow graph and the timeline (inline SVG), the cross-agent tree, the
// state node by node, errors and the event log. Pure: data in, DOM out.
import { badge, executionHref, firstLine, h, ms, s, short, shown, when } from "./dom.js";

// The workflow graph: layers by distance from the start, left to right.
export function graph(view) {
  const g = view.graph;
  if (!g) return h("p", { class: "muted", text: "this node cannot load the workflow to draw it" });
  const depth = new Map([[g.start, 0]]);
  const queue = [g.start];
  const out = new Map();
  for (const edge of g.edges) {
    if (!out.has(edge.from)) out.set(edge.from, []);
    out.get(edge.from).push(edge.to);
  }
  while (queue.length) {
    const at = queue.shift();
    for (const next of out.get(at) || []) {
      if (!depth.has(next)) {
        depth.set(next, depth.get(at) + 1);
        queue.push(next);
      }
    }
  }
  let deepest = Math.max(0, ...depth.values());
  for (const node of g.nodes) if (!depth.has(node.id)) depth.set(node.id, ++deepest);
  const layers = new Map();
  const place = new Map();
  for (const node of g.nodes) {
    const d = depth.get(node.id);
    const row = layers.get(d) || 0;
    layers.set(d, row + 1);
    place.set(node.id, { x: 16 + d * 170, y: 16 + row * 62 });
  }
  const width = 16 + (deepest + 1) * 170;
  const height = 16 + Math.max(...layers.values()) * 62 + 10;
  const current = new Set([...view.current.work, ...view.current.waits].map((w) => w.node));
  const visited = new Set(view.visited);
  const failed = new Set(view.timeline.filter((t) => t.status === "failed").map((t) => t.node));
  const svgRoot = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "workflow graph" });
  svgRoot.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa3b5" }))));
  for (const edge of g.edges) {
    const a = place.get(edge.from), b = place.get(edge.to);
    if (!a || !b) continue;
    const x1 = a.x + 140, y1 = a.y + 18, x2 = b.x, y2 = b.y + 18;
    const back = x2 <= a.x;
    const d = back
      ? `M ${a.x + 70} ${a.y + 36} C ${a.x + 70} ${a.y + 70}, ${b.x + 70} ${b.y + 70}, ${b.x + 70} ${b.y + 36}`
      : `M ${x1} ${y1} C ${x1 + 20} ${y1}, ${x2 - 20} ${y2}, ${x2} ${y2}`;
    svgRoot.append(s("path", { class: `edge ${edge.kind}`, d, "marker-end": "url(#arrow)" }));
    if (edge.label) {
      const lx = back ? (a.x + b.x) / 2 + 70 : (x1 + x2) / 2;
      const ly = back ? Math.max(a.y, b.y) + 60 : (y1 + y2) / 2 - 4;
      svgRoot.append(s("text", { class: "edge-label", x: lx, y: ly, "text-anchor": "middle" }, shown(edge.label, 28)));
    }
  }
  for (const node of g.nodes) {
    const p = place.get(node.id);
    const kind = current.has(node.id) ? "current" : failed.has(node.id) ? "failed" : visited.has(node.id) ? "visited" : "";
    svgRoot.append(
      s("g", { class: `node ${kind}`, "data-node": node.id, transform: `translate(${p.x},${p.y})` },
        s("title", {}, `${node.id} (${node.type})${node.description ? `: ${node.description}` : ""}`),
        s("rect", { width: 140, height: 36, rx: 6 }),
        s("text", { x: 8, y: 15 }, shown(node.id, 20)),
        s("text", { class: "kind", x: 8, y: 29 }, node.type)),
    );
  }
  return svgRoot;
}

// The timeline: one bar per node attempt, on one time axis.
export function timeline(view) {
  const runs = view.timeline;
  if (!runs.length) return h("p", { class: "muted", text: "no node has started yet" });
  const start = Math.min(...runs.map((r) => r.started_at));
  const now = Date.now() / 1000;
  const end = Math.max(...runs.map((r) => r.started_at + (r.duration ?? Math.max(0, now - r.started_at))));
  const span = Math.max(end - start, 0.001);
  const label = 200, bars = 560, row = 22;
  const height = runs.length * row + 24;
  const root = s("svg", { width: label + bars + 320, height, role: "img", "aria-label": "timeline" });
  root.append(s("line", { class: "axis", x1: label, y1: 0, x2: label, y2: height - 18 }));
  root.append(s("text", { x: label, y: height - 4 }, "0"), s("text", { x: label + bars, y: height - 4, "text-anchor": "end" }, ms(span)));
  runs.forEach((run, i) => {
    const took = run.duration ?? Math.max(0, now - run.started_at);
    const x = label + ((run.started_at - start) / span) * bars;
    const w = Math.max(3, (took / span) * bars);
    const usage = run.usage || {};
    const peer = run.peer ? ` → ${run.peer.peer} (task ${short(run.peer.task_id)})` : "";
    const tokens = usage.total_tokens ? ` · ${usage.total_tokens} tok` : "";
    const cost = usage.cost ? ` · $${Number(usage.cost).toFixed(4)}` : "";
    const name = `${run.node}${run.visit > 1 ? ` #${run.visit}` : ""}${run.attempt > 1 ? ` try ${run.attempt}` : ""}`;
    root.append(
      s("g", { class: "run", transform: `translate(0,${i * row})` },
        s("title", {}, `${name}: ${run.status}, ${ms(took)}${tokens}${cost}${peer}${run.detail ? `\n${run.detail}` : ""}`),
        s("text", { x: 0, y: 15 }, shown(name, 26)),
        s("rect", { class: `bar ${run.status}`, x, y: 4, width: w, height: 14, rx: 2 }),
        s("text", { x: Math.min(x + w + 4, label + bars + 4), y: 15 }, `${ms(took)}${tokens}${cost}${peer}`)),
    );
  });
  return root;
}

export function treeTasks(task) {
  const found = [`${task.node}/${task.id}`];
  for (const link of task.children || []) {
    if (link.task) found.push(...treeTasks(link.task));
    else if (link.target && link.task_id) found.push(`${link.target}/${link.task_id}`);
  }
  return found;
}

// The cross-agent tree: the task, and each peer's task under its delegation.
export function treeView(tree) {
  return h("ul", { class: "tree root" }, taskItem(tree));
}

function taskItem(task) {
  if (task.reach !== "ok") {
    return h("li", {}, h("span", { class: "task", "data-node": task.node, "data-id": task.id }, h("strong", { text: task.node }), h("span", { class: "id", text: short(task.id) }), h("span", { class: "reach", text: task.reach })));
  }
  const line = h("span", { class: "task", "data-node": task.node, "data-id": task.id },
    h("strong", { text: task.node }),
    h("a", { class: "id", href: executionHref(task.node, task.id), title: task.id, text: short(task.id) }),
    h("span", { text: task.workflow }),
    task.skill ? h("span", { class: "skill", text: `skill ${task.skill}` }) : null,
    badge(task.status),
    task.question ? h("span", { class: "muted", text: `asks: ${shown(task.question.text, 80)}` }) : null);
  const children = (task.children || []).map((link) => {
    const trip = link.round_trip !== null && link.round_trip !== undefined ? `round trip ${ms(link.round_trip)}` : link.live ? `now ${link.live.state}` : "";
    const asked = link.skill ? ` · skill ${link.skill}` : "";
    const about = h("div", { class: "link", title: link.identity || null, text: `${link.node}#${link.visit} → ${link.peer || "?"}${link.target && link.target !== link.peer ? ` (${link.target})` : ""}${asked} · task ${short(link.task_id)}${trip ? ` · ${trip}` : ""}${link.outcome ? ` · ${link.outcome}` : ""}${link.answers ? ` · ${link.answers} answer(s) relayed` : ""}` });
    if (link.task) {
      const sub = taskItem(link.task);
      sub.prepend(about);
      return sub;
    }
    return h("li", {}, about, h("span", { class: "reach", text: link.reach }));
  });
  return h("li", {}, line, children.length ? h("ul", { class: "tree" }, children) : null);
}

export function stepsView(view) {
  if (!view.steps.length) {
    return h("div", {}, h("p", { class: "muted", text: "no node changed the state yet" }), stateDetails("state now", view.state));
  }
  const folded = { ...(view.input || {}) };
  const rows = [];
  for (const step of view.steps) {
    Object.assign(folded, step.after);
    const whole = { ...folded };
    for (const key of Object.keys(step.after)) {
      rows.push(h("tr", {},
        h("td", { text: `${step.node}${step.visit > 1 ? ` #${step.visit}` : ""}` }),
        h("td", { text: key }),
        h("td", {}, h("pre", { text: shown(step.before[key], 300) })),
        h("td", {}, h("pre", { text: shown(step.after[key], 300) }))));
    }
    rows.push(h("tr", {}, h("td", { colspan: 4 }, stateDetails(`whole state after ${step.node}`, whole))));
  }
  return h("div", {},
    stateDetails("input", view.input || {}),
    h("table", { class: "list" }, h("thead", {}, h("tr", {}, h("th", { text: "node" }), h("th", { text: "key" }), h("th", { text: "before" }), h("th", { text: "after" }))), h("tbody", {}, rows)),
    stateDetails("state now", view.state));
}

const stateDetails = (title, value) => h("details", {}, h("summary", { text: title }), h("pre", { text: JSON.stringify(value, null, 2) }));

export function errorsView(errors) {
  return h("div", {}, errors.map((e) => h("div", { class: "error" },
    h("p", {}, h("strong", { text: e.node ? `${e.node}${e.attempt ? ` (attempt ${e.attempt})` : ""}` : "execution" }), ` ${when(e.at)}: `, h("span", { class: "reach", text: firstLine(e.error) }), e.retry_at ? " — a retry follows" : ""),
    // The whole message once, folded: a long one is thousands of characters.
    (e.error || "").length > firstLine(e.error).length ? h("details", {}, h("summary", { text: "the whole message" }), h("pre", { class: "trace", text: e.error })) : null,
    e.traceback ? h("pre", { class: "trace", text: e.traceback }) : null)));
}

// What the log says that is no error: messages, throttling, a model's slot.
export function notesView(notes) {
  return h("ul", { class: "notes" }, notes.map((n) => h("li", { class: "note", "data-kind": n.kind },
    h("strong", { text: n.node ? `${n.node}${n.visit > 1 ? ` #${n.visit}` : ""}` : n.kind }), ` ${when(n.at)}: `, n.text)));
}

export function eventsView(events) {
  return h("table", { class: "list" },
    h("thead", {}, h("tr", {}, ["seq", "kind", "node", "visit", "try", "at", "data"].map((t) => h("th", { text: t })))),
    h("tbody", {}, events.map((e) => h("tr", {},
      h("td", { text: e.seq }), h("td", { text: e.kind }), h("td", { text: e.node || "" }), h("td", { text: e.visit ?? "" }), h("td", { text: e.attempt ?? "" }), h("td", { text: when(e.at) }),
      h("td", {}, e.data ? h("details", {}, h("summary", { text: shown(e.data, 90) }), h("pre", { text: JSON.stringify(e.data, null, 2) })) : "")))));
}
