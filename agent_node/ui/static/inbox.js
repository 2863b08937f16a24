// The inbox: every node's questions and event waits, a question relayed up
// a chain shown once, where its caller would answer it.
import { answerForm, cancel, signalForm } from "./actions.js";
import { $, api, badge, executionHref, h, short, when } from "./dom.js";
import { state } from "./state.js";

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

export async function countInbox() {
  try {
    const page = await api("/api/inbox?limit=100");
    const count = topItems(page.items).length;
    $("#inbox-count").textContent = count ? String(count) : "";
  } catch (_) {
    $("#inbox-count").textContent = "";
  }
}

export async function loadInbox(reset) {
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
