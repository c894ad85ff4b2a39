"use strict";
/* The label page: lease the hardest item, answer from the keyboard, keep the next item leased and its image
   loaded so it appears at once, undo the last answer, show progress. Talks only to /api/v1 with the CSRF
   header from the page's meta tag. */

(() => {
  const root = document.getElementById("labeler");
  if (!root) return;

  const config = {
    project: root.dataset.project,
    kind: root.dataset.kind,
    classes: JSON.parse(root.dataset.classes || "[]"),
    boxClasses: JSON.parse(root.dataset.boxClasses || "[]"),
    threshold: Number(root.dataset.threshold || 0.5),
    detection: root.dataset.detection === "1",
  };
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const apiBase = `/api/v1/projects/${encodeURIComponent(config.project)}`;
  const PREFETCH = 1;

  const $ = (id) => document.getElementById(id);
  const els = {
    stage: $("stage"), wrap: $("image-wrap"), image: $("item-image"), loading: $("stage-loading"),
    empty: $("stage-empty"), itemId: $("item-id"), scores: $("model-scores"), reasons: $("reasons"),
    priority: $("priority"), metadata: $("metadata"), doneToday: $("done-today"), queueSize: $("queue-size"),
    agreement: $("agreement"), undo: $("undo"), skip: $("skip"), help: $("help"), status: $("status"),
    boxCount: $("box-count"), legend: $("class-legend"),
  };

  const state = {
    current: null, // the item on screen
    shownAt: 0,
    buffer: [], // items leased ahead, images loading
    history: [], // [{annotationId, item, boxes}] newest last, for undo
    exhausted: false,
    filling: null,
    work: Promise.resolve(), // server writes run one after another, in the order the user gave them
  };

  const editor = config.detection && window.BoxEditor
    ? new window.BoxEditor($("box-layer"), { classNames: config.boxClasses, onChange: boxesChanged })
    : null;

  class ApiFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body, extra = {}) {
    const response = await fetch(apiBase + path, {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
      body: body === undefined ? undefined : JSON.stringify(body),
      ...extra,
    });
    if (response.status === 401) {
      window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
      throw new ApiFailure(401, "logged out");
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiFailure(response.status, data.detail || response.statusText);
    return data;
  }

  // --- status line --------------------------------------------------------------------------------------
  let statusTimer = 0;
  function say(message, isError = false) {
    els.status.textContent = message;
    els.status.classList.toggle("error", isError);
    els.status.classList.add("show");
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => els.status.classList.remove("show"), isError ? 8000 : 1500);
  }
  const fail = (error) => say(error instanceof ApiFailure ? error.message : `Error: ${error.message}`, true);

  // --- leasing and prefetching --------------------------------------------------------------------------
  function preload(item) {
    item.ready = new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(true);
      img.onerror = () => resolve(false);
      img.src = item.image_url;
      item.preloaded = img; // keeps the decoded image referenced until it is shown
    });
    return item;
  }

  function itemOf(payload) {
    if (!payload) return null;
    return payload.item ? payload.item : payload;
  }

  function isKnown(item) {
    return (state.current && state.current.id === item.id) || state.buffer.some((b) => b.id === item.id);
  }

  /* Leases items until PREFETCH are waiting behind the current one. */
  function fill() {
    if (state.filling || state.exhausted || state.buffer.length >= PREFETCH) return state.filling || Promise.resolve();
    state.filling = (async () => {
      try {
        const item = itemOf(await api("POST", "/queue/next"));
        if (!item || isKnown(item)) {
          state.exhausted = true;
        } else {
          state.buffer.push(preload(item));
          await item.ready;
        }
      } catch (error) {
        fail(error);
      } finally {
        state.filling = null;
        root.dataset.prefetched = String(state.buffer.length); // how many items wait, ready to show
      }
      if (!state.current) advance();
      else if (!state.exhausted && state.buffer.length < PREFETCH) fill();
    })();
    return state.filling;
  }

  function advance() {
    state.current = state.buffer.shift() || null;
    root.dataset.prefetched = String(state.buffer.length);
    if (state.current) {
      show(state.current);
    } else if (state.exhausted) {
      showEmpty();
    } else {
      showLoading();
    }
    fill();
  }

  // --- rendering ----------------------------------------------------------------------------------------
  function showLoading() {
    els.wrap.hidden = true;
    els.empty.hidden = true;
    els.loading.hidden = false;
    els.itemId.textContent = "";
  }

  function showEmpty() {
    els.wrap.hidden = true;
    els.loading.hidden = true;
    els.empty.hidden = false;
    els.itemId.textContent = "";
    els.scores.replaceChildren();
    els.reasons.replaceChildren();
    els.metadata.replaceChildren();
    els.priority.textContent = "";
  }

  async function show(item, boxes = []) {
    await item.ready;
    if (state.current !== item) return; // the user moved on while the image loaded
    els.image.src = item.image_url;
    els.image.alt = `Item ${item.external_id}`;
    els.image.dataset.itemId = item.id;
    els.itemId.textContent = item.external_id;
    root.dataset.itemId = item.id;
    els.loading.hidden = true;
    els.empty.hidden = true;
    els.wrap.hidden = false;
    fitImage();
    renderScores(item);
    renderHardness(item);
    renderMetadata(item);
    if (editor) editor.reset(suggestionsOf(item), boxes);
    state.shownAt = performance.now();
  }

  function fitImage() {
    const item = state.current;
    if (!item || els.wrap.hidden) return;
    const naturalW = els.image.naturalWidth || item.width || 4;
    const naturalH = els.image.naturalHeight || item.height || 3;
    const style = getComputedStyle(els.stage);
    const availW = els.stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const availH = els.stage.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    const scale = Math.min(availW / naturalW, availH / naturalH);
    els.image.style.width = `${Math.floor(naturalW * scale)}px`;
    els.image.style.height = `${Math.floor(naturalH * scale)}px`;
    if (editor) editor.render();
  }

  function node(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function renderScores(item) {
    const rows = (item.predictions || []).map((p) => {
      const li = node("li", "score");
      const head = node("div", "score-head");
      head.append(node("span", "model", p.model), node("span", "value", typeof p.score === "number" ? p.score.toFixed(2) : "–"));
      li.title = `${p.model} ${p.model_version || ""}`.trim();
      li.append(head);
      if (typeof p.score === "number") {
        const bar = node("div", "score-bar");
        bar.setAttribute("role", "meter");
        bar.setAttribute("aria-label", `${p.model} score`);
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "1");
        bar.setAttribute("aria-valuenow", String(p.score));
        const fill = node("div", `fill ${p.score >= config.threshold ? "above" : "below"}`);
        fill.style.width = `${Math.round(p.score * 100)}%`;
        const mark = node("div", "threshold");
        mark.style.left = `calc(${config.threshold * 100}% - 1px)`;
        mark.title = `threshold ${config.threshold}`;
        bar.append(fill, mark);
        li.append(bar);
      }
      const notes = [p.model_version, p.label ? `says “${p.label}”` : "", p.boxes && p.boxes.length ? `${p.boxes.length} boxes` : ""];
      li.append(node("div", "score-note", notes.filter(Boolean).join(" · ")));
      return li;
    });
    els.scores.replaceChildren(...(rows.length ? rows : [node("li", "muted", "No predictions")]));
  }

  function renderHardness(item) {
    const hardness = item.hardness || {};
    els.priority.textContent = typeof hardness.priority === "number" ? `priority ${hardness.priority.toFixed(2)}` : "";
    const reasons = (hardness.reasons || []).map((r) => node("li", "", typeof r === "string" ? r : JSON.stringify(r)));
    els.reasons.replaceChildren(...(reasons.length ? reasons : [node("li", "muted", "No reasons recorded")]));
  }

  const META_LABELS = { camera_id: "Camera", captured_at: "Captured", is_night: "Light", lat: "Latitude", lon: "Longitude" };

  function metaValue(key, value) {
    if (key === "is_night") {
      return value ? node("span", "night", "night") : document.createTextNode(value === false ? "day" : "–");
    }
    if (key === "captured_at" && value) {
      const when = new Date(value);
      if (!Number.isNaN(when.getTime())) {
        const text = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
        const time = node("time", "", text);
        time.dateTime = value;
        return time;
      }
    }
    if (Array.isArray(value)) return document.createTextNode(value.join(", "));
    if (value !== null && typeof value === "object") return document.createTextNode(JSON.stringify(value));
    return document.createTextNode(value === null || value === undefined || value === "" ? "–" : String(value));
  }

  function renderMetadata(item) {
    const meta = { ...(item.metadata || {}) };
    const parts = [];
    const keys = [...Object.keys(META_LABELS).filter((k) => k in meta), ...Object.keys(meta).filter((k) => !(k in META_LABELS))];
    for (const key of keys) {
      const value = meta[key];
      if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) continue;
      const dd = node("dd");
      dd.append(metaValue(key, meta[key]));
      parts.push(node("dt", "", META_LABELS[key] || key.replace(/_/g, " ")), dd);
    }
    if (item.width && item.height) {
      parts.push(node("dt", "", "Size"), node("dd", "", `${item.width} × ${item.height}`));
    }
    els.metadata.replaceChildren(...parts);
  }

  function suggestionsOf(item) {
    const out = [];
    for (const p of item.predictions || []) {
      for (const b of p.boxes || []) {
        if (Array.isArray(b) && b.length >= 4) out.push([b[0], b[1], b[2], b[3], b[4] ?? 0, b[5], p.model]);
      }
    }
    return out;
  }

  function boxesChanged({ count, selectedClass }) {
    if (els.boxCount) els.boxCount.textContent = String(count);
    if (els.legend) {
      for (const button of els.legend.querySelectorAll("[data-class]")) {
        button.classList.toggle("active", Number(button.dataset.class) === selectedClass);
      }
    }
  }

  // --- progress -----------------------------------------------------------------------------------------
  async function refreshProgress() {
    try {
      const p = await api("GET", "/progress");
      els.doneToday.textContent = String(p.done_today ?? "–");
      els.queueSize.textContent = String(p.queue_size ?? "–");
      els.agreement.textContent = typeof p.agreement_rate === "number" ? `${Math.round(p.agreement_rate * 100)}%` : "–";
    } catch (error) {
      fail(error);
    }
  }

  // --- actions ------------------------------------------------------------------------------------------
  function queueWork(task) {
    state.work = state.work.then(task).catch(fail);
    return state.work;
  }

  function updateUndo() {
    els.undo.disabled = state.history.length === 0;
  }

  function labelName(label) {
    if (config.kind === "multiclass") return config.classes[label] || String(label);
    return label === 1 ? "yes" : "no";
  }

  function answer(label) {
    const item = state.current;
    if (!item || els.wrap.hidden) return;
    const boxes = editor && label === 1 ? editor.value() : [];
    const durationMs = Math.round(performance.now() - state.shownAt);
    advance();
    queueWork(async () => {
      try {
        const data = await api("POST", `/items/${item.id}/annotations`, { label, boxes, duration_ms: durationMs });
        state.history.push({ annotationId: data.annotation.id, item, boxes });
        updateUndo();
        say(`Saved: ${labelName(label)}${boxes.length ? ` with ${boxes.length} box${boxes.length > 1 ? "es" : ""}` : ""}`);
      } catch (error) {
        // A lost lease (409) means someone else may hold the item now: move on rather than retry forever.
        if (error instanceof ApiFailure && error.status === 409) {
          say(`Not saved: ${error.message}. The item went back to the queue.`, true);
          return;
        }
        // Any other failure: bring the item back so the answer is not lost.
        if (state.current) state.buffer.unshift(state.current);
        state.current = item;
        show(item, boxes);
        throw error;
      }
      await refreshProgress();
    });
  }

  function skip() {
    const item = state.current;
    if (!item || els.wrap.hidden) return;
    advance();
    queueWork(async () => {
      await api("POST", `/queue/${item.id}/skip`);
      say("Skipped");
      await refreshProgress();
    });
  }

  function undo() {
    queueWork(async () => {
      const last = state.history.pop();
      updateUndo();
      if (!last) return;
      const restored = preload(itemOf(await api("POST", `/annotations/${last.annotationId}/undo`)) || last.item);
      if (state.current) state.buffer.unshift(state.current);
      state.exhausted = false;
      state.current = restored;
      await show(restored, last.boxes);
      say("Undone: answer it again");
      await refreshProgress();
    });
  }

  function releaseAll() {
    // keepalive lets these finish after the page is gone; the lease would expire anyway, this is just faster.
    for (const item of [state.current, ...state.buffer]) {
      if (item) api("POST", `/queue/${item.id}/release`, undefined, { keepalive: true }).catch(() => {});
    }
  }

  // --- input --------------------------------------------------------------------------------------------
  function toggleHelp() {
    if (els.help.open) els.help.close();
    else els.help.showModal();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (els.help.open) {
      if (event.key === "?") { els.help.close(); event.preventDefault(); }
      return; // Escape closes the dialog natively
    }
    if (event.key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (editor && editor.handleKey(event)) { event.preventDefault(); return; }
    if (event.repeat) return; // a held key must not answer a run of items
    const key = event.key.toLowerCase();
    let handled = true;
    if (config.kind === "multiclass" && /^[0-9]$/.test(key) && Number(key) < config.classes.length) answer(Number(key));
    else if (config.kind !== "multiclass" && (key === "1" || key === "y")) answer(1);
    else if (config.kind !== "multiclass" && (key === "0" || key === "n")) answer(0);
    else if (key === "enter" && editor && !(event.target.closest && event.target.closest("button, a"))) answer(1);
    else if (key === "s") skip();
    else if (key === "u") undo();
    else handled = false;
    if (handled) event.preventDefault();
  }

  document.addEventListener("keydown", onKey);
  for (const button of root.querySelectorAll(".answer")) {
    button.addEventListener("click", () => answer(Number(button.dataset.label)));
  }
  els.skip.addEventListener("click", skip);
  els.undo.addEventListener("click", undo);
  $("help-open").addEventListener("click", toggleHelp);
  const acceptAll = $("accept-all");
  if (acceptAll && editor) acceptAll.addEventListener("click", () => editor.acceptAll());
  if (els.legend && editor) {
    for (const button of els.legend.querySelectorAll("[data-class]")) {
      button.addEventListener("click", () => {
        editor.setClass(Number(button.dataset.class));
        button.blur(); // Enter must submit the answer, not click this button again
      });
    }
  }
  $("check-again").addEventListener("click", () => {
    state.exhausted = false;
    showLoading();
    fill();
    refreshProgress();
  });
  window.addEventListener("resize", fitImage);
  window.addEventListener("pagehide", releaseAll);

  fill();
  refreshProgress();
})();
