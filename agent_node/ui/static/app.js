// agent-node ui: the page. Hand-written, no libraries, no build step.
// It talks to its own server only (/api/...), which talks to the nodes.
// Everything a node says is shown as text (textContent), never as HTML.
import { afterActions } from "./actions.js";
import { $, api, badge, executionHref, firstLine, h, said, short, throttle, when } from "./dom.js";
import { loadExecution, markReach, stopLive } from "./execution.js";
import { countInbox, loadInbox } from "./inbox.js";
import { outageOf, state } from "./state.js";

// -- routing ---------------------------------------------------------------------------

// The overview's filters live in the address (#/?status=failed&…): a reload,
// back and forward, and a shared link keep them.
function route() {
  const hash = location.hash || "#/";
  const at = hash.indexOf("?");
  const where = at < 0 ? hash : hash.slice(0, at);
  const query = at < 0 ? "" : hash.slice(at + 1);
  const parts = where.slice(2).split("/").map(decodeURIComponent);
  stopLive();
  if (parts[0] === "x" && parts.length >= 3) {
    show("execution");
    state.open = { node: parts[1], id: parts.slice(2).join("/") };
    return loadExecution(true);
  }
  state.open = null;
  if (parts[0] === "inbox") {
    show("inbox");
    // Who asks whom is told by the nodes' identities: the inbox waits for them.
    return state.looked ? loadInbox(true) : Promise.resolve();
  }
  show("overview");
  if (query === state.listed) return Promise.resolve();
  fillFilters(new URLSearchParams(query));
  return loadExecutions(true);
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

// Answers may come back out of order (a node that hangs holds one for
// seconds): only the latest asked is drawn.
let nodesAsked = 0;

async function loadNodes() {
  const asked = ++nodesAsked;
  let answer;
  try {
    answer = await api("/api/nodes");
  } catch (error) {
    state.looked = true;
    if (asked === nodesAsked) $("#node-list").replaceChildren(h("p", { class: "muted", text: `nodes: ${error.message}` }));
    return;
  }
  state.looked = true;
  if (asked !== nodesAsked) return;
  // What was last known of a node stays on its card while it is unreachable.
  const before = new Map(state.nodes.map((n) => [n.key, n]));
  state.nodes = answer.nodes.map((n) => (n.up || !before.has(n.key) ? n : { ...before.get(n.key), ...n, card: n.card || before.get(n.key).card }));
  // Kept while the page lives: a node that goes down is still known by its identity.
  for (const node of state.nodes) if (node.identity) state.identities.set(node.identity, node.key);
  drawNodes();
  fillChoices();
}

function drawNodes() {
  if (state.nodes.length) $("#node-list").replaceChildren(...state.nodes.map(nodeCard));
}

function nodeCard(node) {
  const summary = node.node || {};
  const card = node.card || {};
  const load = summary.load || {};
  const asking = summary.asking || {};
  const outage = outageOf(node.key);
  const skills = (card.skills || []).map((skill) => h("span", { class: "chip", title: skill.description || "", text: skill.name || skill.id }));
  return h(
    "article",
    { class: `card node-card${outage ? " down" : ""}`, "data-node": node.key },
    h("h3", {}, h("span", { class: "name", text: node.key }), summary.name && summary.name !== node.key ? h("span", { class: "muted", text: `(${summary.name})` }) : null, outage ? h("span", { class: "status down", text: "unreachable" }) : badge(node.health)),
    h("div", { class: "url", text: node.url }),
    node.identity ? h("div", { class: "identity muted", text: node.identity }) : null,
    card.name ? h("div", { class: "card-name" }, h("strong", { text: card.name }), card.description ? ` — ${card.description}` : "") : null,
    skills.length ? h("div", { class: "chips" }, skills) : null,
    !outage && !node.error
      ? h("div", { class: "load", text: `running ${load.running || 0} · waiting ${load.waiting || 0} · asking ${(asking.input || 0) + (asking.auth || 0)}${summary.version ? ` · v${summary.version}` : ""}` })
      : null,
    node.shares_store_with ? h("div", { class: "shared muted", text: `one store with ${node.shares_store_with.join(", ")}: the same executions and counts; steps running in this one: ${(summary.here || {}).visits || 0}` }) : null,
    outage
      ? h("div", { class: "reach", role: "status", text: `unreachable${outage.since ? ` since ${new Date(outage.since).toLocaleTimeString()}` : ""}${outage.error ? `: ${firstLine(outage.error)}` : ""}` })
      : node.error ? h("div", { class: "reach", text: node.error }) : null,
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

const FIELDS = ["node", "status", "workflow", "skill", "caller", "since", "until", "q"];

// The form as the address holds it: its fields as typed (a time as the field shows it).
function formQuery() {
  const form = $("#filters");
  const query = new URLSearchParams();
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) query.set(name, value);
  }
  return query.toString();
}

function fillFilters(query) {
  const form = $("#filters");
  for (const name of FIELDS) {
    const field = form.elements[name];
    const value = query.get(name) || "";
    // A node or skill not listed yet (the nodes answer later) is kept as an option.
    if (field.tagName === "SELECT" && value && ![...field.options].some((o) => o.value === value)) {
      field.append(h("option", { value, text: value }));
    }
    field.value = value;
  }
}

function filterParams() {
  const form = $("#filters");
  const params = new URLSearchParams();
  for (const name of ["status", "workflow", "caller", "q"]) {
    let value = form.elements[name].value.trim();
    if (name === "q") value = value.replace(/^…/, ""); // an id as the page shows it
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

// A list asked for anew makes every answer asked for before it stale (back
// from a filter, the unfiltered list must not be replaced by the filtered
// one answering late).
let listAsked = 0;

async function loadExecutions(reset) {
  if (reset) state.listed = formQuery();
  const asked = reset ? ++listAsked : listAsked;
  const params = filterParams();
  params.set("limit", "50");
  if (!reset && state.next) params.set("cursor", state.next);
  const notes = $("#list-notes");
  let page;
  try {
    page = await api(`/api/executions?${params}`);
  } catch (error) {
    if (asked !== listAsked) return;
    notes.textContent = error.message;
    if (reset) $("#execution-rows").replaceChildren();
    return;
  }
  if (asked !== listAsked) return;
  const rows = page.executions.map(executionRow);
  if (reset) {
    // How many there are (null: not counted, as for a search by id).
    state.count = typeof page.count === "number" ? page.count : null;
    state.uncounted = page.uncounted || [];
  }
  if (reset) $("#execution-rows").replaceChildren(...rows);
  else $("#execution-rows").append(...rows);
  state.next = page.next;
  $("#more").hidden = !page.next;
  state.listNotes = [...page.errors, ...(page.notes || [])].map((e) => said(e.node, e.message));
  countRows();
}

function countRows() {
  const count = $("#execution-rows").children.length;
  const form = $("#filters");
  const exact = form.elements.workflow.value.trim() || form.elements.caller.value.trim();
  const none = exact ? "no executions (workflow and caller match whole names only)" : "no executions";
  const told = [];
  if (state.count !== null && (state.count || state.uncounted.length)) {
    const some = state.uncounted.length ? `at least ${state.count.toLocaleString()} executions (${state.uncounted.join(", ")} not counted)` : `${state.count.toLocaleString()} ${state.count === 1 ? "execution" : "executions"}`;
    told.push(some);
    if (count !== state.count || state.uncounted.length) told.push(`${count.toLocaleString()} shown`);
  } else told.push(count ? `${count.toLocaleString()} shown` : none);
  $("#list-notes").textContent = [...told, ...state.listNotes].join(" · ");
}

// Nodes of one store list the same executions: a row is the store's
// (data-store), under the node that speaks for it, its replicas named.
function executionRow(row) {
  const replicas = row.replicas && row.replicas.length ? row.replicas : null;
  return h(
    "tr",
    { class: "row", "data-node": row.node, "data-store": row.store, "data-id": row.id, onclick: () => (location.hash = executionHref(row.node, row.id)) },
    h("td", { class: "node-cell", text: row.node, title: replicas ? `also served by ${replicas.join(", ")}` : null }),
    h("td", {}, h("a", { class: "id", href: executionHref(row.node, row.id), title: row.id, text: short(row.id) })),
    h("td", { text: row.workflow }),
    h("td", { class: "status-cell" }, badge(row.status)),
    h("td", { class: "caller", text: row.caller || "", title: row.caller || "" }),
    h("td", { text: when(row.created_at) }),
    h("td", { class: "updated", text: when(row.updated_at) }),
  );
}

function applyChanges(node, store, rows) {
  const body = $("#execution-rows");
  const where = store ? `[data-store="${CSS.escape(store)}"]` : `[data-node="${CSS.escape(node)}"]`;
  for (const row of rows) {
    const found = body.querySelector(`tr${where}[data-id="${CSS.escape(row.id)}"]`);
    if (found) {
      found.querySelector(".status-cell").replaceChildren(badge(row.status));
      found.querySelector(".updated").textContent = when(row.updated_at);
      found.classList.remove("fresh");
      void found.offsetWidth;
      found.classList.add("fresh");
    } else if (!filtered()) {
      const fresh = executionRow({ ...row, node, store });
      fresh.classList.add("fresh");
      body.prepend(fresh);
      if (state.count !== null) state.count += 1; // a new one: the list shows every execution
    }
  }
  countRows();
}

// -- live updates ---------------------------------------------------------------------

const refreshNodes = throttle(loadNodes, 1500);
const refreshInbox = throttle(() => (state.view === "inbox" ? loadInbox(true) : countInbox()), 500);
const refreshExecution = throttle(() => loadExecution(false), 300);

// The badge says whether the page hears every node: its own link to the UI
// server, and each node's stream behind it.
function drawBadge() {
  const badge = $("#stream-state");
  const down = [...state.down.keys()];
  if (state.link !== "up") {
    badge.textContent = state.link === "token" ? "not connected: this page's token is no longer valid" : "reconnecting: the UI server is not answering…";
    badge.className = "stream down";
  } else if (down.length) {
    badge.textContent = `live, except ${down.join(", ")} (unreachable)`;
    badge.className = "stream partial";
  } else {
    badge.textContent = "live";
    badge.className = "stream up";
  }
  markReach();
}

function nodeEvent(data) {
  if (data.up) {
    // A node followed now (first, or again): what changed while it was not,
    // no change will tell; the list is read again.
    const missed = state.down.has(data.node) || !state.heard.has(data.node);
    state.down.delete(data.node);
    state.heard.add(data.node);
    if (missed && state.view === "overview" && state.listed !== null) loadExecutions(true);
  } else {
    // Since when, as the UI server saw it: a page opened in an outage says when it began.
    const since = data.since ? data.since * 1000 : (state.down.get(data.node) || {}).since || Date.now();
    state.down.set(data.node, { since, error: data.error || "" });
  }
  drawBadge();
  drawNodes(); // at once: asking the nodes again takes a down one seconds to tell
  refreshNodes();
  refreshInbox(); // a question its node relays says whether that node is down
  if (state.view === "execution" && state.open && state.open.node === data.node) refreshExecution();
}

function follow() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => {
    state.link = "up";
    drawBadge();
  });
  source.addEventListener("error", () => {
    state.link = "down";
    drawBadge();
    // An EventSource gives up on an answer that is no stream (a 401: the UI
    // restarted with a new token): ask what the server says, and try again.
    if (source.readyState === EventSource.CLOSED) {
      fetch("/api/nodes").then((r) => {
        state.link = r.status === 401 ? "token" : "down";
        drawBadge();
        if (r.status !== 401) setTimeout(follow, 3000);
      }, () => setTimeout(follow, 3000));
    }
  });
  source.addEventListener("node", (event) => nodeEvent(JSON.parse(event.data)));
  source.addEventListener("changes", (event) => {
    const data = JSON.parse(event.data);
    if (data.overflow) loadExecutions(true);
    else applyChanges(data.node, data.store, data.executions);
    refreshNodes();
    refreshInbox();
    const shownHere = data.executions.some((row) => state.watched.has(`${data.node}/${row.id}`));
    if (state.view === "execution" && (shownHere || data.overflow)) refreshExecution();
  });
}

// While the open execution's node is unreachable its changes are not told:
// the view asks again every few seconds (a replica may answer for it).
function pollWhileDown() {
  setInterval(() => {
    if (state.view === "execution" && state.open && state.down.has(state.open.node)) loadExecution(false);
  }, 3000);
}

// -- start -----------------------------------------------------------------------------

function start() {
  afterActions(refreshInbox);
  const form = $("#filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = formQuery();
    if (query === state.listed) loadExecutions(true);
    else location.hash = query ? `#/?${query}` : "#/";
  });
  form.addEventListener("reset", () => setTimeout(() => (location.hash = "#/"), 0));
  $("#more").addEventListener("click", () => loadExecutions(false));
  $("#inbox-more").addEventListener("click", () => loadInbox(false));
  // The skip link: past the header and the filters, to the first row (or the view's heading).
  $("#skip").addEventListener("click", (event) => {
    event.preventDefault();
    const target = state.view === "overview" ? $("#execution-rows a.id") || $("#executions-title") : $(`#view-${state.view} h2`);
    if (!target) return;
    if (!target.matches("a")) target.tabIndex = -1;
    target.focus();
  });
  window.addEventListener("hashchange", route);
  // The list first: the nodes answer it sooner when nothing else is asked of
  // them at once. The rest follows it (or a moment, if it is slow).
  const listed = route();
  const moment = new Promise((resolve) => setTimeout(resolve, 300));
  Promise.race([listed, moment]).then(() => {
    // The inbox knows the nodes' identities from them (who asks whom).
    loadNodes().then(() => {
      countInbox();
      if (state.view === "inbox") loadInbox(true);
    });
    follow();
    pollWhileDown();
  });
}

start();
