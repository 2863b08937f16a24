// The inbox: every node's questions and event waits, a question relayed up
// a chain shown once, where its caller would answer it.
import { answerForm, cancel, signalForm } from "./actions.js";
import { $, api, badge, executionHref, h, redraw, said, short, when } from "./dom.js";
import { outageOf, state } from "./state.js";

// A question relayed up a chain appears on every node of it; the page
// shows it once, at the top (answering there is answering as the caller
// would), with the chain it came up. A task whose caller is one of the
// page's nodes is asked by that node, never by a person: it is never
// answered directly (that would bypass its caller). When the node between
// is unreachable, its question is folded into the one above that names
// that node and asks the same; else it is shown without an answer, saying
// why (and that its caller is down, when it is).
function topItems(items) {
  learnAskers(items);
  const byTask = new Map(items.map((item) => [item.execution.id, item]));
  const nodeOf = state.identities;
  const below = new Set();
  const folded = new Map(); // the item above → the item below it, found without the node between
  for (const item of items) {
    const from = item.question && item.question.asked_by;
    if (from && byTask.has(from.task_id)) below.add(from.task_id);
  }
  for (const item of items) {
    const caller = nodeOf.get(item.execution.caller);
    if (!caller || below.has(item.execution.id) || item.kind === "event") continue;
    below.add(item.execution.id);
    const text = item.question && item.question.text;
    const above = items.find((it) => it !== item && !below.has(it.execution.id) && askerOf(it) === caller
      && !byTask.has(it.question.asked_by.task_id) && it.question.text === text && !folded.has(it));
    if (above) {
      folded.set(above, item);
    } else {
      below.delete(item.execution.id);
      item.orphan = caller;
    }
  }
  return items.filter((item) => !below.has(item.execution.id)).map((item) => {
    const chain = [];
    let at = item;
    while (at && at.question && at.question.asked_by) {
      chain.push(askerOf(at));
      const next = byTask.get(at.question.asked_by.task_id);
      if (!next && folded.has(at)) {
        chain.push(folded.get(at).node);
        break;
      }
      at = next;
    }
    return { item, chain };
  });
}

// The node a question came up from, as the page names it (the UI server
// finds it by the endpoint the delegation went to), else as the asking
// node names its peer.
function askerOf(item) {
  const by = item.question && item.question.asked_by;
  return by ? by.target || by.peer : null;
}

// A node that asked is known by the identity its certificate named to the
// node it asked: a task it started is its, even while it is down.
function learnAskers(items) {
  for (const item of items) {
    const by = item.question && item.question.asked_by;
    if (by && by.target && by.identity && !state.identities.has(by.identity)) state.identities.set(by.identity, by.target);
  }
}

function unanswerable(caller) {
  const outage = outageOf(caller);
  if (!outage) return `asked of ${caller}, which is to answer it (answered here, it would bypass ${caller}); it is answered where ${caller}'s caller sees it`;
  const since = outage.since ? ` since ${new Date(outage.since).toLocaleTimeString()}` : "";
  return `not answerable from here: its caller ${caller}, which relays the question up to its own caller, is unreachable${since} (answered here, it would bypass ${caller}); it is answered where ${caller}'s caller sees it, once ${caller} is back`;
}

// The badge: each question once, of every node's first page (as many as a
// node gives at once); "+" when there are more.
export async function countInbox() {
  try {
    const page = await api("/api/inbox?limit=200");
    const count = topItems(page.items).length;
    $("#inbox-count").textContent = count ? `${count}${page.next ? "+" : ""}` : "";
    $("#inbox-count").title = page.next ? `more than ${count} wait on a person` : "";
  } catch (_) {
    $("#inbox-count").textContent = "";
  }
}

// An inbox asked for anew makes every answer asked for before it stale
// (drawn late, it would show a question answered since).
let inboxAsked = 0;

export async function loadInbox(reset) {
  const asked = reset ? ++inboxAsked : inboxAsked;
  const params = new URLSearchParams({ limit: "50" });
  if (!reset && state.inboxNext) params.set("cursor", state.inboxNext);
  let page;
  try {
    page = await api(`/api/inbox?${params}`);
  } catch (error) {
    if (asked === inboxAsked) $("#inbox-notes").textContent = error.message;
    return;
  }
  if (asked !== inboxAsked) return;
  const tops = topItems(page.items);
  const shownItems = tops.map(inboxItem);
  // Redrawn on every change of any node: an answer being typed stays.
  if (reset) redraw($("#inbox-items"), shownItems);
  else $("#inbox-items").append(...shownItems);
  state.inboxNext = page.next;
  $("#inbox-more").hidden = !page.next;
  const count = $("#inbox-items").children.length;
  if (reset) countInbox();
  $("#inbox-notes").textContent = [count ? "" : "nothing waits on a person", ...page.errors.map((e) => said(e.node, e.message))].filter(Boolean).join(" · ");
}

// What a redraw keeps of an item (data-keep): its forms and its Cancel, as
// long as it asks the same. An item of a store's replicas is the store's
// (the node that speaks for it may change).
const keepMark = (item, ...what) => JSON.stringify([item.store || item.node, item.execution.id, ...what]);
const kept = (element, mark) => {
  element.dataset.keep = mark;
  return element;
};

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
    body.push(kept(signalForm(item.node, exec.id, item), keepMark(item, "signal", item.event, item.step)));
  } else {
    body.push(h("p", { class: "question", text: item.question ? item.question.text : "input required" }));
    if (chain.length) body.push(h("p", { class: "relayed", text: `asked by ${chain[chain.length - 1]}${chain.length > 1 ? `, relayed by ${chain.slice(0, -1).reverse().join(", ")}` : ""} to ${item.node}` }));
    if (item.orphan) body.push(h("p", { class: "relayed why", text: unanswerable(item.orphan) }));
    else {
      const question = item.question || { kind: item.kind, text: "" };
      body.push(kept(answerForm(item.node, exec.id, question), keepMark(item, "answer", question.kind, question.text)));
    }
  }
  const cancelButton = h("button", { class: "danger", type: "button", "data-keep": keepMark(item, "cancel"), "aria-label": `Cancel task ${short(exec.id)} on ${item.node}`, onclick: () => cancel(item.node, exec.id) }, "Cancel");
  return h("article", { class: "item", "data-node": item.node, "data-store": item.store, "data-id": exec.id, "data-kind": item.kind }, title, body, h("div", { class: "actions" }, cancelButton));
}
