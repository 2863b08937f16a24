// What a person may do to an execution, through the UI's API (which turns
// each into a call to the node): answer its question (an A2A message),
// signal its event, cancel it, retry it.
import { executionHref, executionPath, flash, h, post, said, short } from "./dom.js";

let after = () => {};

/** What to run after an action succeeded (the page refreshes its inbox). */
export function afterActions(fn) {
  after = fn;
}

export function answerForm(node, id, question) {
  const input = h("input", { type: "text", name: "answer", required: true, placeholder: question.kind === "auth" ? "the authorization" : "your answer", "aria-label": `answer to: ${question.text}` });
  return h("form", { class: "answer", onsubmit: async (event) => {
    event.preventDefault();
    const button = event.target.querySelector("button");
    button.disabled = true;
    try {
      await post(`${executionPath(node, id)}/answer`, { text: input.value });
      flash(`answer sent to ${node} (task ${short(id)})`);
      input.value = "";
      after();
    } catch (error) {
      flash(said(node, error.message), true);
    } finally {
      button.disabled = false;
    }
  } }, input, h("button", { type: "submit", text: "Answer" }));
}

export function signalForm(node, id, wait) {
  const data = h("textarea", { name: "data", placeholder: "data as JSON (optional)", rows: 1, "aria-label": `data of the event ${wait.event}, as JSON (optional)` });
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
      after();
    } catch (error) {
      flash(said(node, error.message), true);
    }
  } }, data, h("button", { type: "submit", text: `Signal ${wait.event}` }));
}

export async function cancel(node, id) {
  if (!confirm(`Cancel ${short(id)} on ${node}?`)) return;
  try {
    const answer = await post(`${executionPath(node, id)}/cancel`, { reason: "canceled from agent-node ui" });
    flash(answer.canceled ? `canceled ${short(id)}` : `${short(id)} had ended already`);
    after();
  } catch (error) {
    flash(said(node, error.message), true);
  }
}

export async function retry(node, id) {
  try {
    const answer = await post(`${executionPath(node, id)}/retry`, {});
    flash(`started ${short(answer.retried_as)} again with the same input`);
    location.hash = executionHref(node, answer.retried_as);
  } catch (error) {
    flash(said(node, error.message), true);
  }
}
