// agent-node ui: the page. Hand-written, no libraries, no build step.
// It talks to its own server only (/api/...), which talks to the nodes.
// Everything a node says is shown as text (textContent), never as HTML.
"use strict";

(() => {
  // -- small helpers ----------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);
  const SVG = "http://www.w3.org/2000/svg";

  function build(element, attrs, kids) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") element.textContent = value;
      else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
      else element.setAttribute(key, value === true ? "" : String(value));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      element.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return element;
  }
  const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
  const s = (tag, attrs, ...kids) => build(document.createElementNS(SVG, tag), attrs, kids);

  const short = (id) => (id ? String(id).slice(0, 8) : "");
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
  const ms = (seconds) => (seconds === null || seconds === undefined ? "" : `${Math.round(seconds * 1000)} ms`);
  const badge = (word) => h("span", { class: `status ${word || ""}`, text: word || "?" });
  function shown(value, max = 160) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text === undefined ? "" : text.length > max ? text.slice(0, max - 1) + "…" : text;
  }
  const executionHref = (node, id) => `#/x/${encodeURIComponent(node)}/${encodeURIComponent(id)}`;
  const executionPath = (node, id) =>
    `/api/nodes/${encodeURIComponent(node)}/executions/${encodeURIComponent(id)}`;

  async function api(path, options) {
    const response = await fetch(path, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message;
      throw new Error(message || `HTTP ${response.status}`);
    }
    return body;
  }
  const post = (path, body) =>
    api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });

  let flashTimer = null;
  function flash(text, bad) {
    const box = $("#flash");
    box.textContent = text;
    box.className = bad ? "bad" : "";
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => (box.hidden = true), 6000);
  }

  // At most one call of fn per wait, however often it is asked for (a busy
  // node notifies many times a second; the page redraws a few times).
  function throttle(fn, wait) {
    let timer = null;
    return () => {
      if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          fn();
        }, wait);
      }
    };
  }

  // -- state and routing -------------------------------------------------------------

  const state = {
    view: "overview",
    nodes: [],
    next: null, // the executions list's cursor
    inboxNext: null,
    open: null, // {node, id} of the execution shown
    live: null, // its EventSource
    watched: new Set(), // "node/id" of every task in its tree: a change redraws it
  };

  function route() {
    const hash = location.hash || "#/";
    const parts = hash.slice(2).split("/").map(decodeURIComponent);
    stopLive();
    if (parts[0] === "x" && parts.length >= 3) {
      show("execution");
      state.open = { node: parts[1], id: parts.slice(2).join("/") };
      loadExecution(true);
    } else if (parts[0] === "inbox") {
      show("inbox");
      state.open = null;
      loadInbox(true);
    } else {
      show("overview");
      state.open = null;
    }
  }

  function show(view) {
    state.view = view;
    for (const section of document.querySelectorAll(".view")) {
      section.hidden = section.id !== `view-${view}`;
    }
    for (const link of document.querySelectorAll(".top nav a")) {
      link.classList.toggle("active", link.dataset.view === view);
    }
  }

  // -- nodes ----------------------------------------------------------------------------

  async function loadNodes() {
    try {
      const answer = await api("/api/nodes");
      state.nodes = answer.nodes;
    } catch (error) {
      $("#node-list").replaceChildren(h("p", { class: "muted", text: `nodes: ${error.message}` }));
      return;
    }
    $("#node-list").replaceChildren(...state.nodes.map(nodeCard));
    fillChoices();
  }

  function nodeCard(node) {
    const summary = node.node || {};
    const card = node.card || {};
    const counts = summary.counts || {};
    const load = summary.load || {};
    const asking = summary.asking || {};
    const skills = (card.skills || []).map((skill) => h("span", { class: "chip", title: skill.description || "", text: skill.name || skill.id }));
    return h(
      "article",
      { class: `card node-card${node.up ? "" : " down"}`, "data-node": node.key },
      h("h3", {}, h("span", { class: "name", text: node.key }), summary.name && summary.name !== node.key ? h("span", { class: "muted", text: `(${summary.name})` }) : null, badge(node.up ? node.health : "down")),
      h("div", { class: "url", text: node.url }),
      card.name ? h("div", { class: "card-name" }, h("strong", { text: card.name }), card.description ? ` — ${card.description}` : "") : null,
      skills.length ? h("div", { class: "chips" }, skills) : null,
      node.up && !node.error
        ? h("div", { class: "load", text: `running ${load.running || 0} · waiting ${load.waiting || 0} · asking ${(asking.input || 0) + (asking.auth || 0)} · completed ${counts.completed || 0} · failed ${counts.failed || 0}${summary.version ? ` · v${summary.version}` : ""}` })
        : null,
      node.error ? h("div", { class: "reach", text: node.error }) : null,
    );
  }

  function fillChoices() {
    const form = $("#filters");
    const nodeSelect = form.elements.node;
    const skillSelect = form.elements.skill;
    const keepNode = nodeSelect.value;
    const keepSkill = skillSelect.value;
    nodeSelect.replaceChildren(h("option", { value: "", text: "all" }), ...state.nodes.map((n) => h("option", { value: n.key, text: n.key })));
    // Only nodes that say which workflow each skill runs can filter by skill.
    const skills = new Set();
    for (const node of state.nodes) {
      for (const skill of Object.keys((node.node && node.node.skills) || {})) skills.add(skill);
    }
    skillSelect.closest("label").hidden = skills.size === 0;
    skillSelect.replaceChildren(h("option", { value: "", text: "any" }), ...[...skills].sort().map((id) => h("option", { value: id, text: id })));
    nodeSelect.value = keepNode;
    skillSelect.value = keepSkill;
  }

  // -- executions ----------------------------------------------------------------------

  function filterParams() {
    const form = $("#filters");
    const params = new URLSearchParams();
    for (const name of ["status", "workflow", "caller", "q"]) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    for (const name of ["since", "until"]) {
      const value = form.elements[name].value;
      if (value) params.set(name, String(new Date(value).getTime() / 1000));
    }
    const skill = form.elements.skill.value;
    let node = form.elements.node.value;
    if (skill) {
      params.set("skill", skill);
      if (!node) {
        const offering = state.nodes.filter((n) => n.node && n.node.skills && skill in n.node.skills);
        node = offering.map((n) => n.key).join(",");
      }
    }
    if (node) params.set("node", node);
    return params;
  }

  const filtered = () => [...filterParams().keys()].length > 0;

  async function loadExecutions(reset) {
    const params = filterParams();
    params.set("limit", "50");
    if (!reset && state.next) params.set("cursor", state.next);
    const notes = $("#list-notes");
    let page;
    try {
      page = await api(`/api/executions?${params}`);
    } catch (error) {
      notes.textContent = error.message;
      if (reset) $("#execution-rows").replaceChildren();
      return;
    }
    const rows = page.executions.map(executionRow);
    if (reset) $("#execution-rows").replaceChildren(...rows);
    else $("#execution-rows").append(...rows);
    state.next = page.next;
    $("#more").hidden = !page.next;
    const count = $("#execution-rows").children.length;
    const problems = page.errors.map((e) => `${e.node}: ${e.message}`);
    notes.textContent = [count ? `${count} shown` : "no executions", ...problems].join(" · ");
  }

  function executionRow(row) {
    return h(
      "tr",
      { class: "row", "data-node": row.node, "data-id": row.id, onclick: () => (location.hash = executionHref(row.node, row.id)) },
      h("td", { text: row.node }),
      h("td", {}, h("a", { class: "id", href: executionHref(row.node, row.id), title: row.id, text: short(row.id) })),
      h("td", { text: row.workflow }),
      h("td", { class: "status-cell" }, badge(row.status)),
      h("td", { class: "caller", text: row.caller || "", title: row.caller || "" }),
      h("td", { text: when(row.created_at) }),
      h("td", { class: "updated", text: when(row.updated_at) }),
    );
  }

  function applyChanges(node, rows) {
    const body = $("#execution-rows");
    for (const row of rows) {
      const found = body.querySelector(`tr[data-node="${CSS.escape(node)}"][data-id="${CSS.escape(row.id)}"]`);
      if (found) {
        found.querySelector(".status-cell").replaceChildren(badge(row.status));
        found.querySelector(".updated").textContent = when(row.updated_at);
        found.classList.remove("fresh");
        void found.offsetWidth;
        found.classList.add("fresh");
      } else if (!filtered()) {
        const fresh = executionRow({ ...row, node });
        fresh.classList.add("fresh");
        body.prepend(fresh);
      }
    }
  }

  // -- live updates ---------------------------------------------------------------------

  const refreshNodes = throttle(loadNodes, 1500);
  const refreshInbox = throttle(() => (state.view === "inbox" ? loadInbox(true) : countInbox()), 500);
  const refreshExecution = throttle(() => loadExecution(false), 300);

  function follow() {
    const source = new EventSource("/api/stream");
    const badge = $("#stream-state");
    source.addEventListener("open", () => {
      badge.textContent = "live";
      badge.className = "stream up";
    });
    source.addEventListener("error", () => {
      badge.textContent = "reconnecting…";
      badge.className = "stream down";
    });
    source.addEventListener("node", () => refreshNodes());
    source.addEventListener("changes", (event) => {
      const data = JSON.parse(event.data);
      if (data.overflow) loadExecutions(true);
      else applyChanges(data.node, data.executions);
      refreshNodes();
      refreshInbox();
      const shownHere = data.executions.some((row) => state.watched.has(`${data.node}/${row.id}`));
      if (state.view === "execution" && (shownHere || data.overflow)) refreshExecution();
    });
  }

  // -- one execution ---------------------------------------------------------------------

  async function loadExecution(first) {
    const open = state.open;
    if (!open) return;
    const root = $("#execution");
    if (first) root.replaceChildren(h("p", { class: "muted", text: "loading…" }));
    const base = executionPath(open.node, open.id);
    let view, tree, events;
    try {
      [view, tree, events] = await Promise.all([api(base), api(`${base}/tree`), api(`${base}/events`)]);
    } catch (error) {
      root.replaceChildren(h("p", { class: "reach", text: `${open.node}: ${error.message}` }));
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
      h("h3", { text: "State, node by node" }),
      h("div", { class: "panel", id: "steps" }, stepsView(view)),
      h("h3", { text: `Event log (${events.events.length})` }),
      h("div", { class: "panel", id: "events" }, eventsView(events.events)),
    ];
    root.replaceChildren(...parts.filter(Boolean));
    if (first) followLive(open, view);
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
        h("dt", { text: "caller" }), h("dd", { text: view.caller || "—" }),
        h("dt", { text: "context" }), h("dd", { text: view.context_id || "—" }),
        h("dt", { text: "created" }), h("dd", { text: when(view.created_at) }),
        h("dt", { text: "updated" }), h("dd", { text: when(view.updated_at) }),
        h("dt", { text: "now" }), h("dd", { text: describeCurrent(view) }),
        usage.calls ? h("dt", { text: "models" }) : null,
        usage.calls ? h("dd", { text: `${usage.calls} calls · ${usage.tokens} tokens · ${usage.cost === null ? "no price" : `$${usage.cost.toFixed(4)}`}` }) : null,
        view.error ? h("dt", { text: "error" }) : null,
        view.error ? h("dd", { class: "reach", text: view.error }) : null),
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

  // The workflow graph: layers by distance from the start, left to right.
  function graph(view) {
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
  function timeline(view) {
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

  function treeTasks(task) {
    const found = [`${task.node}/${task.id}`];
    for (const link of task.children || []) {
      if (link.task) found.push(...treeTasks(link.task));
      else if (link.target && link.task_id) found.push(`${link.target}/${link.task_id}`);
    }
    return found;
  }

  // The cross-agent tree: the task, and each peer's task under its delegation.
  function treeView(tree) {
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
      badge(task.status),
      task.question ? h("span", { class: "muted", text: `asks: ${shown(task.question.text, 80)}` }) : null);
    const children = (task.children || []).map((link) => {
      const trip = link.round_trip !== null && link.round_trip !== undefined ? `round trip ${ms(link.round_trip)}` : link.live ? `now ${link.live.state}` : "";
      const about = h("div", { class: "link", text: `${link.node}#${link.visit} → ${link.peer || "?"}${link.target && link.target !== link.peer ? ` (${link.target})` : ""} · task ${short(link.task_id)}${trip ? ` · ${trip}` : ""}${link.outcome ? ` · ${link.outcome}` : ""}${link.answers ? ` · ${link.answers} answer(s) relayed` : ""}` });
      if (link.task) {
        const sub = taskItem(link.task);
        sub.prepend(about);
        return sub;
      }
      return h("li", {}, about, h("span", { class: "reach", text: link.reach }));
    });
    return h("li", {}, line, children.length ? h("ul", { class: "tree" }, children) : null);
  }

  function stepsView(view) {
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

  function errorsView(errors) {
    return h("div", {}, errors.map((e) => h("div", { class: "error" },
      h("p", {}, h("strong", { text: e.node ? `${e.node}${e.attempt ? ` (attempt ${e.attempt})` : ""}` : "execution" }), ` ${when(e.at)}: `, h("span", { class: "reach", text: e.error || "" }), e.retry_at ? " — a retry follows" : ""),
      e.traceback ? h("pre", { class: "trace", text: e.traceback }) : null)));
  }

  function eventsView(events) {
    return h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["seq", "kind", "node", "visit", "try", "at", "data"].map((t) => h("th", { text: t })))),
      h("tbody", {}, events.map((e) => h("tr", {},
        h("td", { text: e.seq }), h("td", { text: e.kind }), h("td", { text: e.node || "" }), h("td", { text: e.visit ?? "" }), h("td", { text: e.attempt ?? "" }), h("td", { text: when(e.at) }),
        h("td", {}, e.data ? h("details", {}, h("summary", { text: shown(e.data, 90) }), h("pre", { text: JSON.stringify(e.data, null, 2) })) : "")))));
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

  function stopLive() {
    if (state.live) state.live.close();
    state.live = null;
  }

  // -- actions -------------------------------------------------------------------------

  function answerForm(node, id, question) {
    const input = h("input", { type: "text", name: "answer", required: true, placeholder: question.kind === "auth" ? "the authorization" : "your answer", "aria-label": `answer to: ${question.text}` });
    return h("form", { class: "answer", onsubmit: async (event) => {
      event.preventDefault();
      const button = event.target.querySelector("button");
      button.disabled = true;
      try {
        await post(`${executionPath(node, id)}/answer`, { text: input.value });
        flash(`answer sent to ${node} (task ${short(id)})`);
        input.value = "";
        refreshInbox();
      } catch (error) {
        flash(`${node}: ${error.message}`, true);
      } finally {
        button.disabled = false;
      }
    } }, input, h("button", { type: "submit", text: "Answer" }));
  }

  function signalForm(node, id, wait) {
    const data = h("textarea", { name: "data", placeholder: "data as JSON (optional)", rows: 1 });
    return h("form", { class: "signal", onsubmit: async (event) => {
      event.preventDefault();
      let payload = null;
      if (data.value.trim()) {
        try {
          payload = JSON.parse(data.value);
        } catch (_) {
          flash("the data is not JSON", true);
          return;
        }
      }
      try {
        await post(`${executionPath(node, id)}/signal`, { event: wait.event, data: payload });
        flash(`signaled ${wait.event} to ${node} (task ${short(id)})`);
        refreshInbox();
      } catch (error) {
        flash(`${node}: ${error.message}`, true);
      }
    } }, data, h("button", { type: "submit", text: `Signal ${wait.event}` }));
  }

  async function cancel(node, id) {
    if (!confirm(`Cancel ${short(id)} on ${node}?`)) return;
    try {
      const answer = await post(`${executionPath(node, id)}/cancel`, { reason: "canceled from agent-node ui" });
      flash(answer.canceled ? `canceled ${short(id)}` : `${short(id)} had ended already`);
      refreshInbox();
    } catch (error) {
      flash(`${node}: ${error.message}`, true);
    }
  }

  async function retry(node, id) {
    try {
      const answer = await post(`${executionPath(node, id)}/retry`, {});
      flash(`started ${short(answer.retried_as)} again with the same input`);
      location.hash = executionHref(node, answer.retried_as);
    } catch (error) {
      flash(`${node}: ${error.message}`, true);
    }
  }

  // -- inbox -----------------------------------------------------------------------------

  // A question relayed up a chain appears on every node of it; the page
  // shows it once, at the top (answering there is answering as the caller
  // would), with the chain it came up.
  function topItems(items) {
    const byTask = new Map(items.map((item) => [item.execution.id, item]));
    const below = new Set();
    for (const item of items) {
      const from = item.question && item.question.asked_by;
      if (from && byTask.has(from.task_id)) below.add(from.task_id);
    }
    return items.filter((item) => !below.has(item.execution.id)).map((item) => {
      const chain = [];
      let at = item;
      while (at && at.question && at.question.asked_by) {
        chain.push(at.question.asked_by.peer);
        at = byTask.get(at.question.asked_by.task_id);
      }
      return { item, chain };
    });
  }

  async function countInbox() {
    try {
      const page = await api("/api/inbox?limit=100");
      const count = topItems(page.items).length;
      $("#inbox-count").textContent = count ? String(count) : "";
    } catch (_) {
      $("#inbox-count").textContent = "";
    }
  }

  async function loadInbox(reset) {
    const params = new URLSearchParams({ limit: "50" });
    if (!reset && state.inboxNext) params.set("cursor", state.inboxNext);
    let page;
    try {
      page = await api(`/api/inbox?${params}`);
    } catch (error) {
      $("#inbox-notes").textContent = error.message;
      return;
    }
    const tops = topItems(page.items);
    const shownItems = tops.map(inboxItem);
    if (reset) $("#inbox-items").replaceChildren(...shownItems);
    else $("#inbox-items").append(...shownItems);
    state.inboxNext = page.next;
    $("#inbox-more").hidden = !page.next;
    const count = $("#inbox-items").children.length;
    if (reset) $("#inbox-count").textContent = count ? String(count) : "";
    $("#inbox-notes").textContent = [count ? "" : "nothing waits on a person", ...page.errors.map((e) => `${e.node}: ${e.message}`)].filter(Boolean).join(" · ");
  }

  function inboxItem({ item, chain }) {
    const exec = item.execution;
    const title = h("div", { class: "head" },
      badge(item.kind),
      h("strong", { text: item.node }),
      h("a", { class: "id", href: executionHref(item.node, exec.id), title: exec.id, text: short(exec.id) }),
      h("span", { text: exec.workflow }),
      h("span", { class: "muted", text: `since ${when(item.question ? item.question.asked_at : exec.updated_at)}` }));
    const body = [];
    if (item.kind === "event") {
      body.push(h("p", { class: "question", text: `waits for the event “${item.event}” at step ${item.step}${item.deadline ? `, until ${when(item.deadline)}` : ""}` }));
      body.push(signalForm(item.node, exec.id, item));
    } else {
      body.push(h("p", { class: "question", text: item.question ? item.question.text : "input required" }));
      if (chain.length) body.push(h("p", { class: "relayed", text: `asked by ${chain[chain.length - 1]}${chain.length > 1 ? `, relayed by ${chain.slice(0, -1).reverse().join(", ")}` : ""} to ${item.node}` }));
      body.push(answerForm(item.node, exec.id, item.question || { kind: item.kind, text: "" }));
    }
    const cancelButton = h("button", { class: "danger", type: "button", onclick: () => cancel(item.node, exec.id) }, "Cancel");
    return h("article", { class: "item", "data-node": item.node, "data-id": exec.id, "data-kind": item.kind }, title, body, h("div", { class: "actions" }, cancelButton));
  }

  // -- start -----------------------------------------------------------------------------

  function start() {
    const form = $("#filters");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      loadExecutions(true);
    });
    form.addEventListener("reset", () => setTimeout(() => loadExecutions(true), 0));
    $("#more").addEventListener("click", () => loadExecutions(false));
    $("#inbox-more").addEventListener("click", () => loadInbox(false));
    window.addEventListener("hashchange", route);
    loadExecutions(true);
    loadNodes();
    countInbox();
    route();
    follow();
  }

  start();
})();
