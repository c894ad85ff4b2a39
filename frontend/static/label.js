"use strict";
/* The label page: lease the hardest item, answer from the keyboard, keep the next item leased and its image
   loaded so it appears at once, undo the last answer, show progress toward the day's goal. The page's leases
   follow it: renewed while it is open, given back when it closes. A failed answer brings the item back as the
   user left it. Talks only to /api/v1 with the CSRF token from the page's meta tag. */

(() => {
  const root = document.getElementById("labeler");
  if (!root) return;

  const config = JSON.parse(document.getElementById("label-config").textContent);
  const scheme = config.scheme;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const apiBase = `/api/v1/projects/${encodeURIComponent(config.project)}`;
  const PREFETCH = 1;
  // Renew well inside the lease so one late or lost heartbeat does not cost the item.
  const HEARTBEAT_MS = Math.max(5, Math.min(30, config.lease_seconds / 4)) * 1000;
  // The counts under the image are read from the server at most this often while labeling (it counts the whole
  // pool: 0.2 s at a million items); the user's own answers move "done today" at once.
  const PROGRESS_EVERY_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const els = {
    stage: $("stage"), wrap: $("image-wrap"), image: $("item-image"), loading: $("stage-loading"),
    empty: $("stage-empty"), emptyDetail: $("empty-detail"), itemId: $("item-id"), scores: $("model-scores"),
    reasons: $("reasons"), priority: $("priority"), metadata: $("metadata"), doneToday: $("done-today"),
    queueSize: $("queue-size"), agreement: $("agreement"), undo: $("undo"), skip: $("skip"), help: $("help"),
    status: $("status"), boxCount: $("box-count"), legend: $("class-legend"), goalBar: $("goal-bar"),
    goalText: $("goal-text"), queueText: $("queue-text"), flagDialog: $("flag-dialog"),
    flagReason: $("flag-reason"), zoomLevel: $("zoom-level"),
  };

  const state = {
    current: null, // the item on screen
    shownAt: 0,
    buffer: [], // items leased ahead, images loading
    sending: new Set(), // ids of items whose answer or skip is on its way: still leased, not to be re-served
    history: [], // [{annotationId, item, saved}] newest last, for undo
    exhausted: false,
    filling: null,
    work: Promise.resolve(), // server writes run one after another, in the order the user gave them
    progress: null, // the last figures read from /progress, with the user's answers since counted in
    progressReadAt: -Infinity,
    progressTimer: null,
  };

  const editor = scheme.boxes && window.BoxEditor
    ? new window.BoxEditor($("box-layer"), { classes: scheme.box_classes, onChange: boxesChanged })
    : null;

  class ApiFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function errorText(data, fallback) {
    const first = (data.errors || [])[0];
    if (first && first.message && first.message !== data.detail) return `${data.detail || ""} ${first.message}`.trim();
    return data.detail || fallback;
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
    if (!response.ok) throw new ApiFailure(response.status, errorText(data, response.statusText));
    return data;
  }

  // --- status line --------------------------------------------------------------------------------------
  let statusTimer = 0;
  function say(message, isError = false) {
    els.status.textContent = message;
    els.status.classList.toggle("error", isError);
    els.status.classList.add("show");
    clearTimeout(statusTimer);
    // An error stays until the next action: the user has to read it to fix the answer.
    if (!isError) statusTimer = setTimeout(() => els.status.classList.remove("show"), 1500);
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

  function heldIds() {
    const ids = new Set(state.sending);
    if (state.current) ids.add(state.current.id);
    for (const item of state.buffer) ids.add(item.id);
    return [...ids];
  }

  function isKnown(item) {
    return heldIds().includes(item.id);
  }

  /* Leases items until PREFETCH are waiting behind the current one. */
  function fill() {
    if (state.filling || state.exhausted || state.buffer.length >= PREFETCH) return state.filling || Promise.resolve();
    state.filling = (async () => {
      try {
        const item = itemOf(await api("POST", "/queue/next", { holding: heldIds() }));
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

  /* Puts `item` back on screen as the user left it; the item shown meanwhile waits at the front. */
  function restore(item, saved) {
    if (state.current && state.current !== item) state.buffer.unshift(state.current);
    state.current = item;
    return show(item, saved);
  }

  // --- leases follow the page ---------------------------------------------------------------------------
  async function heartbeat() {
    const ids = [state.current, ...state.buffer].filter(Boolean).map((item) => item.id);
    if (!ids.length) return;
    try {
      const result = await api("POST", "/queue/renew", { item_ids: ids });
      const lost = new Set(result.lost);
      if (!lost.size) return;
      state.buffer = state.buffer.filter((item) => !lost.has(item.id));
      if (state.current && lost.has(state.current.id)) {
        state.current.lost = true;
        say("Someone else has this item now (your hold ran out): press S to go on.", true);
      }
      fill();
    } catch (error) {
      if (!(error instanceof ApiFailure)) return; // offline for a moment: the next beat tries again
      fail(error);
    }
  }

  function releaseAll() {
    const ids = [state.current, ...state.buffer].filter(Boolean).map((item) => item.id);
    if (!ids.length) return;
    // sendBeacon cannot set headers: the CSRF token travels as a form field, which the server also accepts.
    const body = new URLSearchParams({ item_ids: ids.join(","), csrf_token: csrfToken });
    navigator.sendBeacon(`${apiBase}/queue/release`, body);
  }

  function restart() {
    state.current = null;
    state.buffer = [];
    state.exhausted = false;
    showLoading();
    fill();
    readProgress();
  }

  // --- zoom and pan -------------------------------------------------------------------------------------
  const view = { scale: 1, x: 0, y: 0, pan: null, spaceHeld: false };
  const ZOOM_STEP = 1.25;
  const MAX_ZOOM = 8;

  function applyView() {
    els.wrap.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    els.zoomLevel.textContent = `${Math.round(view.scale * 100)}%`;
    els.stage.dataset.zoom = view.scale.toFixed(3);
    els.stage.classList.toggle("zoomed", view.scale > 1);
  }

  /* Zooms by `factor` keeping the image point under (clientX, clientY) where it is; the stage centre by default. */
  function zoomBy(factor, clientX, clientY) {
    if (els.wrap.hidden) return;
    const rect = els.wrap.getBoundingClientRect();
    const stage = els.stage.getBoundingClientRect();
    const px = clientX ?? stage.left + stage.width / 2;
    const py = clientY ?? stage.top + stage.height / 2;
    const next = Math.min(MAX_ZOOM, Math.max(1, view.scale * factor));
    if (next === 1) { resetView(); return; }
    const originX = rect.left - view.x; // where the untransformed image sits
    const originY = rect.top - view.y;
    const qx = px - originX, qy = py - originY;
    view.x = qx - (next / view.scale) * (qx - view.x);
    view.y = qy - (next / view.scale) * (qy - view.y);
    view.scale = next;
    applyView();
  }

  function resetView() {
    Object.assign(view, { scale: 1, x: 0, y: 0 });
    applyView();
  }

  function startPan(event) {
    const wantsPan = event.button === 1 || (event.button === 0 && (event.altKey || view.spaceHeld));
    if (!wantsPan || els.wrap.hidden) return;
    view.pan = { x: event.clientX - view.x, y: event.clientY - view.y, id: event.pointerId };
    els.stage.setPointerCapture(event.pointerId);
    els.stage.classList.add("panning");
    event.preventDefault();
    event.stopPropagation(); // the box editor must not start a box
  }

  function movePan(event) {
    if (!view.pan) return;
    view.x = event.clientX - view.pan.x;
    view.y = event.clientY - view.pan.y;
    applyView();
  }

  function endPan(event) {
    if (!view.pan) return;
    if (els.stage.hasPointerCapture(event.pointerId)) els.stage.releasePointerCapture(event.pointerId);
    view.pan = null;
    els.stage.classList.remove("panning");
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
    delete root.dataset.itemId;
    els.scores.replaceChildren();
    els.reasons.replaceChildren();
    els.metadata.replaceChildren();
    els.priority.textContent = "";
    readProgress();
  }

  async function show(item, saved = null) {
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
    resetView();
    fitImage();
    renderScores(item);
    renderHardness(item);
    renderMetadata(item);
    if (editor) editor.reset(suggestionsOf(item), saved);
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
        const fillBar = node("div", `fill ${p.score >= config.threshold ? "above" : "below"}`);
        fillBar.style.width = `${Math.round(p.score * 100)}%`;
        const mark = node("div", "threshold");
        mark.style.left = `calc(${config.threshold * 100}% - 1px)`;
        mark.title = `threshold ${config.threshold}`;
        bar.append(fillBar, mark);
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
    clearTimeout(state.progressTimer);
    state.progressTimer = null;
    state.progressReadAt = performance.now();
    try {
      showProgress(await api("GET", "/progress"));
    } catch (error) {
      fail(error);
    }
  }

  // Reads wait behind the page's writes, so a read never races an answer that `countAnswer` adds on its own.
  function readProgress() {
    return queueWork(refreshProgress);
  }

  // After an answer, skip or flag: read the counts now if the last read is old enough, else once when it is.
  function refreshProgressSoon() {
    if (state.progressTimer) return;
    const wait = state.progressReadAt + PROGRESS_EVERY_MS - performance.now();
    if (wait <= 0) readProgress();
    else state.progressTimer = setTimeout(readProgress, wait);
  }

  // The user's own answer (+1) or undo (-1) shows at once; the next read brings everyone else's.
  function countAnswer(delta) {
    if (state.progress) {
      state.progress.done_today = Math.max(0, state.progress.done_today + delta);
      showProgress(state.progress);
    }
    refreshProgressSoon();
  }

  function showProgress(p) {
    state.progress = p;
    els.doneToday.textContent = String(p.done_today ?? "–");
    els.queueSize.textContent = String(p.queue_size ?? "–");
    els.agreement.textContent = typeof p.agreement_rate === "number" ? `${Math.round(p.agreement_rate * 100)}%` : "–";
    const goal = p.daily_goal || 0;
    els.goalText.textContent = goal ? `${p.done_today} of ${goal} today` : `${p.done_today} done today`;
    if (goal && p.done_today >= goal) els.goalText.textContent += " · goal reached";
    if (els.goalBar) els.goalBar.value = Math.min(p.done_today, goal);
    els.queueText.textContent = `${p.queue_size} waiting`;
    els.emptyDetail.textContent = p.leased_by_others
      ? `Every item is labeled or being labeled by someone else (${p.leased_by_others} now). Those come back if they let go.`
      : "Every item is labeled. New predictions refill it.";
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
    const found = scheme.answers.find((a) => a.label === label);
    return found ? found.name.toLowerCase() : String(label);
  }

  function answer(label) {
    const item = state.current;
    if (!item || els.wrap.hidden) return;
    const saved = editor ? editor.snapshot() : null;
    const boxes = editor ? editor.value() : [];
    const durationMs = Math.round(performance.now() - state.shownAt);
    state.sending.add(item.id);
    advance();
    queueWork(async () => {
      try {
        const data = await api("POST", `/items/${item.id}/annotations`, { label, boxes, duration_ms: durationMs });
        state.history.push({ annotationId: data.annotation.id, item, saved });
        updateUndo();
        const withBoxes = boxes.length ? ` with ${boxes.length} box${boxes.length > 1 ? "es" : ""}` : "";
        say(`Saved: ${labelName(label)}${withBoxes}`);
      } catch (error) {
        // The lease is still ours unless the server says it is gone (409): bring the item back exactly as the
        // user left it, so they can fix the answer and send it again, or skip.
        if (error instanceof ApiFailure && error.status === 409) {
          say(`Not saved: ${error.message}`, true);
          return;
        }
        state.sending.delete(item.id);
        await restore(item, saved);
        throw error;
      } finally {
        state.sending.delete(item.id);
      }
      countAnswer(1);
    });
  }

  function skip() {
    const item = state.current;
    if (!item || els.wrap.hidden) return;
    if (item.lost) { advance(); return; } // nothing to give back
    state.sending.add(item.id);
    advance();
    queueWork(async () => {
      try {
        await api("POST", `/queue/${item.id}/skip`);
      } finally {
        state.sending.delete(item.id);
      }
      say("Skipped");
      refreshProgressSoon();
    });
  }

  function openFlag() {
    if (!state.current || els.wrap.hidden) return;
    els.flagReason.value = "";
    els.flagDialog.returnValue = "";
    els.flagDialog.showModal();
    els.flagReason.focus();
  }

  function flagClosed() {
    const item = state.current;
    if (els.flagDialog.returnValue !== "flag" || !item) return;
    const reason = els.flagReason.value.trim();
    state.sending.add(item.id);
    advance();
    queueWork(async () => {
      try {
        await api("POST", `/items/${item.id}/flag`, { reason });
      } finally {
        state.sending.delete(item.id);
      }
      say("Flagged for a reviewer");
      refreshProgressSoon();
    });
  }

  function undo() {
    queueWork(async () => {
      const last = state.history.pop();
      updateUndo();
      if (!last) return;
      const restored = preload(itemOf(await api("POST", `/annotations/${last.annotationId}/undo`)) || last.item);
      state.exhausted = false;
      await restore(restored, last.saved);
      say("Undone: answer it again");
      countAnswer(-1);
    });
  }

  // --- input --------------------------------------------------------------------------------------------
  const answerByKey = new Map(scheme.answers.flatMap((a) => a.keys.map((key) => [key, a.label])));

  function toggleHelp() {
    if (els.help.open) els.help.close();
    else els.help.showModal();
  }

  function onKey(event) {
    if (event.key === " " && !event.target.closest("input, textarea, button, a, select")) {
      view.spaceHeld = true;
      els.stage.classList.add("pannable");
      event.preventDefault();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (els.flagDialog.open) return; // its own form handles Enter and Escape
    if (els.help.open) {
      if (event.key === "?") { els.help.close(); event.preventDefault(); }
      return; // Escape closes the dialog natively
    }
    if (event.key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (event.key === "+" || event.key === "=") { zoomBy(ZOOM_STEP); event.preventDefault(); return; }
    if (event.key === "-") { zoomBy(1 / ZOOM_STEP); event.preventDefault(); return; }
    if (event.key === "0") { resetView(); event.preventDefault(); return; }
    if (editor && !els.wrap.hidden && editor.handleKey(event)) { event.preventDefault(); return; }
    if (event.repeat) return; // a held key must not answer a run of items
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const onControl = event.target.closest && event.target.closest("button, a, summary");
    let handled = true;
    if (answerByKey.has(key)) answer(answerByKey.get(key));
    else if (key === "Enter" && editor && !onControl) answer(config.kind === "detection" && !editor.boxes.length ? 0 : 1);
    else if (key === scheme.actions.skip) skip();
    else if (key === scheme.actions.undo) undo();
    else if (key === scheme.actions.flag) openFlag();
    else handled = false;
    if (handled) event.preventDefault();
  }

  function onKeyUp(event) {
    if (event.key === " ") {
      view.spaceHeld = false;
      els.stage.classList.remove("pannable");
    }
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", onKeyUp);
  for (const button of root.querySelectorAll(".answer")) {
    button.addEventListener("click", () => { answer(Number(button.dataset.label)); button.blur(); });
  }
  els.skip.addEventListener("click", skip);
  els.undo.addEventListener("click", undo);
  $("flag").addEventListener("click", openFlag);
  els.flagDialog.addEventListener("close", flagClosed);
  $("help-open").addEventListener("click", toggleHelp);
  $("zoom-in").addEventListener("click", () => zoomBy(ZOOM_STEP));
  $("zoom-out").addEventListener("click", () => zoomBy(1 / ZOOM_STEP));
  $("zoom-reset").addEventListener("click", resetView);
  els.stage.addEventListener("wheel", (event) => {
    if (els.wrap.hidden) return;
    event.preventDefault();
    zoomBy(event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, event.clientX, event.clientY);
  }, { passive: false });
  els.stage.addEventListener("pointerdown", startPan, { capture: true });
  els.stage.addEventListener("pointermove", movePan);
  els.stage.addEventListener("pointerup", endPan);
  els.stage.addEventListener("pointercancel", endPan);
  const acceptAll = $("accept-all");
  if (acceptAll && editor) acceptAll.addEventListener("click", () => { editor.acceptAll(); acceptAll.blur(); });
  if (els.legend && editor) {
    for (const button of els.legend.querySelectorAll("[data-class]")) {
      button.addEventListener("click", () => {
        editor.setClass(Number(button.dataset.class));
        button.blur(); // Enter must submit the answer, not click this button again
      });
    }
  }
  $("check-again").addEventListener("click", restart);
  window.addEventListener("resize", fitImage);
  window.addEventListener("pagehide", releaseAll);
  // Back from the browser's page cache: the leases were given back when the page was hidden.
  window.addEventListener("pageshow", (event) => { if (event.persisted) restart(); });
  setInterval(heartbeat, HEARTBEAT_MS);

  applyView();
  fill();
  readProgress();
})();
