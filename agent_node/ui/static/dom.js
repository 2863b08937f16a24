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
export const ms = (seconds) => (seconds === null || seconds === undefined ? "" : `${Math.round(seconds * 1000)} ms`);
export const badge = (word) => h("span", { class: `status ${word || ""}`, text: word || "?" });
export function shown(value, max = 160) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? "" : text.length > max ? text.slice(0, max - 1) + "…" : text;
}
export const executionHref = (node, id) => `#/x/${encodeURIComponent(node)}/${encodeURIComponent(id)}`;
export const executionPath = (node, id) =>
  `/api/nodes/${encodeURIComponent(node)}/executions/${encodeURIComponent(id)}`;

export async function api(path, options) {
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
export const post = (path, body) =>
  api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });

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
