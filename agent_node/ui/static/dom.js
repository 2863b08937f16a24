// Small helpers of the page: building DOM and SVG (text only, never HTML),
// formatting, calling the UI's own API, and pacing redraws.

export const $ = (selector, root = document) => root.querySelector(selector);
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
export const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
export const s = (tag, attrs, ...kids) => build(document.createElementNS(SVG, tag), attrs, kids);

// An id's last eight characters: new ids start with their time (the ids of
// one minute start alike) and end with random digits.
export const short = (id) => (!id ? "" : String(id).length > 9 ? `…${String(id).slice(-8)}` : String(id));
export const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
// A duration in the unit a person reads it in: 849 ms, 12.3 s, 14 min 10 s, 3 h 2 min.
export function ms(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${(Math.round(seconds * 10) / 10).toFixed(1)} s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
}
export const firstLine = (text) => String(text || "").split("\n")[0].slice(0, 300);
// A node's message, said once: "b: b: …" (the node's name given twice) becomes "b: …".
export const said = (node, message) => (String(message).startsWith(`${node}: `) ? String(message) : `${node}: ${message}`);
export const badge = (word) => h("span", { class: `status ${word || ""}`, text: word || "?" });
export function shown(value, max = 160) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? "" : text.length > max ? text.slice(0, max - 1) + "…" : text;
}
export const executionHref = (node, id) => `#/x/${encodeURIComponent(node)}/${encodeURIComponent(id)}`;
export const executionPath = (node, id) =>
  `/api/nodes/${encodeURIComponent(node)}/executions/${encodeURIComponent(id)}`;

export async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (_) {
    throw new Error("the UI server is not answering (is `agent-node ui` still running?)");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = response.status === 401 ? "this page's token is no longer valid: open the address `agent-node ui` printed" : body && body.error && body.error.message;
    throw new Error(message || `HTTP ${response.status}`);
  }
  return body;
}
export const post = (path, body) =>
  api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });

// Draws `kids` in place of what `root` shows, keeping what a person is
// doing there: an element of `kids` marked data-keep is replaced by the
// shown one of the same mark (a form keeps its typed text, its button as it
// is, a send under way), and the element that had focus gets it back with
// its selection. A redraw comes with any change of a node: it must not
// take an answer from under the hands typing it.
export function redraw(root, kids) {
  // Asked first: a shown element moved into `kids` loses the focus.
  const focused = root.contains(document.activeElement) ? document.activeElement : null;
  const typing = focused && typeof focused.selectionStart === "number";
  const selection = typing ? [focused.selectionStart, focused.selectionEnd, focused.selectionDirection] : null;
  const shown = new Map([...root.querySelectorAll("[data-keep]")].map((el) => [el.dataset.keep, el]));
  for (const kid of kids) {
    for (const fresh of kid.querySelectorAll("[data-keep]")) {
      const kept = shown.get(fresh.dataset.keep);
      if (!kept) continue;
      shown.delete(fresh.dataset.keep);
      fresh.replaceWith(kept);
    }
  }
  root.replaceChildren(...kids);
  if (focused && focused.isConnected && document.activeElement !== focused) {
    focused.focus({ preventScroll: true });
    if (selection) focused.setSelectionRange(...selection);
  }
}

let flashTimer = null;
export function flash(text, bad) {
  const box = $("#flash");
  box.textContent = text;
  box.className = bad ? "bad" : "";
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => (box.hidden = true), 6000);
}

// At most one call of fn per wait, however often it is asked for (a busy
// node notifies many times a second; the page redraws a few times).
export function throttle(fn, wait) {
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
