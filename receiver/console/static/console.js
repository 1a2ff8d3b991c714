// The console's little JavaScript: live rows on /events over server-sent events, and "select all" checkboxes.
// Every page works without it; nothing is fetched from elsewhere.
"use strict";

function followEvents(body) {
  const live = document.getElementById("live");
  const source = new EventSource(body.dataset.stream);
  const show = (text, stopped) => {
    if (!live) return;
    live.hidden = false;
    live.textContent = text;
    live.classList.toggle("stopped", stopped);
  };
  source.addEventListener("open", () => show("live", false));
  source.addEventListener("error", () => show(source.readyState === EventSource.CLOSED ? "stopped" : "reconnecting", true));
  source.addEventListener("end", () => {
    source.close();
    show("stopped", true);
  });
  source.addEventListener("change", (message) => {
    const change = JSON.parse(message.data);
    const template = document.createElement("template");
    template.innerHTML = change.html.trim();
    const row = template.content.firstElementChild;
    const existing = body.querySelector(`tr[data-id="${CSS.escape(change.id)}"]`);
    if (existing) {
      existing.replaceWith(row);
    } else if (body.dataset.prepend === "true" && change.seq > newestShown(body)) {
      body.querySelectorAll("tr.empty").forEach((empty) => empty.remove());
      body.prepend(row);
    } else {
      return; // an older event changed: it is not on this page
    }
    row.classList.add("fresh");
  });
}

function newestShown(body) {
  let newest = 0;
  body.querySelectorAll("tr[data-seq]").forEach((row) => {
    newest = Math.max(newest, Number(row.dataset.seq));
  });
  return newest;
}

function selectAll(box) {
  box.addEventListener("change", () => {
    box.form.querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]`).forEach((each) => {
      each.checked = box.checked;
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const body = document.querySelector("tbody[data-stream]");
  if (body && window.EventSource) followEvents(body);
  document.querySelectorAll("input[data-select-all]").forEach(selectAll);
});
