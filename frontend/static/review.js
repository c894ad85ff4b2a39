// The review screen: flagged, skipped-out and conflicting items; keyboard-first (J/K move, digits decide,
// Enter confirms). Each annotator's answer and boxes are shown side by side; the reviewer's decision is final.
(() => {
  "use strict";
  const root = document.getElementById("review");
  if (!root) return;
  const project = root.dataset.project;
  const config = JSON.parse(document.getElementById("review-config").textContent);
  const base = `/api/v1/projects/${encodeURIComponent(project)}`;
  const $ = (id) => document.getElementById(id);
  const state = { entries: [], index: 0, choice: null, busy: false };

  const api = window.hardcaseApi;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function status(message, isError = false) {
    const line = $("review-status");
    line.textContent = message;
    line.classList.toggle("error", isError);
  }

  const answerName = (label) => {
    const answer = config.answers.find((a) => a.label === label);
    return answer ? answer.name : config.classes[label] ?? String(label);
  };
  const boxClassIndex = (cls) => (typeof cls === "number" ? cls : Math.max(0, config.box_classes.indexOf(cls)));
  const boxClassName = (cls) => (typeof cls === "number" ? config.box_classes[cls] ?? `class ${cls}` : String(cls));

  function figure(item, boxes, suggested) {
    const fig = el("figure", { class: "review-figure" });
    fig.append(el("img", { src: item.image_url, alt: `item ${item.external_id}`, loading: "lazy" }));
    for (const box of boxes) {
      const [x1, y1, x2, y2, cls] = box;
      const frame = el("div", { class: `review-box cls-${boxClassIndex(cls) % 10}${suggested ? " suggested" : ""}` });
      frame.style.left = `${100 * x1}%`;
      frame.style.top = `${100 * y1}%`;
      frame.style.width = `${100 * (x2 - x1)}%`;
      frame.style.height = `${100 * (y2 - y1)}%`;
      frame.append(el("span", { text: boxClassName(cls) }));
      fig.append(frame);
    }
    return fig;
  }

  function verdictClass(label) {
    if (config.kind === "multiclass") return "verdict";
    return `verdict ${label === 1 ? "yes" : "no"}`;
  }

  function answerPanel(entry, answer) {
    const panel = el("article", { class: "card review-panel", "data-annotation": String(answer.annotation_id) });
    const count = answer.boxes.length ? ` · ${answer.boxes.length} box${answer.boxes.length === 1 ? "" : "es"}` : "";
    panel.append(
      el("h3", {}, el("span", { text: answer.annotator }), el("span", { class: verdictClass(answer.label), text: answerName(answer.label) })),
      figure(entry.item, answer.boxes, false),
      el("p", { class: "muted small", text: `${answer.duration_ms ? `${(answer.duration_ms / 1000).toFixed(1)} s` : "time not recorded"}${count}` }),
    );
    return panel;
  }

  function cascadePanel(entry) {
    const predictions = entry.item.predictions || [];
    const boxes = predictions.flatMap((p) => (p.boxes || []).map((b) => [...b.slice(0, 4), b[4] ?? 0]));
    const panel = el("article", { class: "card review-panel cascade" });
    const scores = predictions
      .map((p) => `${p.model} ${p.score === null || p.score === undefined ? p.label ?? "—" : Number(p.score).toFixed(2)}`)
      .join(" · ");
    panel.append(
      el("h3", {}, el("span", { text: "Cascade" }), el("span", { class: "muted", text: "suggestions" })),
      figure(entry.item, boxes, true),
      el("p", { class: "muted small", text: scores || "no predictions" }),
    );
    return panel;
  }

  function renderList() {
    const list = $("review-items");
    list.replaceChildren();
    state.entries.forEach((entry, i) => {
      const tags = entry.reasons.map((r) => el("span", { class: `reason-tag ${r.split(" ")[0]}`, text: r }));
      const item = el("li", { "data-item-id": String(entry.item.id), "aria-current": String(i === state.index) });
      item.append(el("span", { class: "ext", text: entry.item.external_id }), ...tags);
      item.addEventListener("click", () => select(i));
      list.append(item);
    });
    $("review-count").textContent = String(state.entries.length);
    $("review-empty").hidden = state.entries.length > 0;
    $("review-detail").hidden = state.entries.length === 0;
  }

  function renderDetail() {
    const entry = state.entries[state.index];
    if (!entry) return;
    $("review-title").textContent = entry.item.external_id;
    const votes = Object.entries(entry.consensus.votes || {})
      .map(([label, n]) => `${answerName(Number(label))} ${n}`)
      .join(" vs ");
    $("review-reasons").textContent = `${entry.reasons.join(", ")}${votes ? ` · votes: ${votes}` : ""}`;
    $("review-flags").replaceChildren(
      ...entry.flags.map((f) => el("li", { text: `${f.user} flagged it${f.reason ? `: “${f.reason}”` : ""}` })),
    );
    const panels = entry.answers.map((answer) => answerPanel(entry, answer));
    if (!panels.length) panels.push(el("p", { class: "card muted", text: "No annotator answered this item yet." }));
    $("review-panels").replaceChildren(...panels, cascadePanel(entry));
    choose(null);
  }

  function select(index) {
    if (!state.entries.length) return;
    state.index = Math.max(0, Math.min(index, state.entries.length - 1));
    for (const li of $("review-items").children) {
      li.setAttribute("aria-current", String(li.dataset.itemId === String(state.entries[state.index].item.id)));
    }
    $("review-items").children[state.index]?.scrollIntoView({ block: "nearest" });
    renderDetail();
  }

  // A decision keeps the boxes of the first annotator who gave that answer (a "no" never carries boxes).
  function boxesSource(entry, label) {
    if (label === 0 && config.kind !== "multiclass") return null;
    return entry.answers.find((a) => a.label === label && a.boxes.length) || null;
  }

  function choose(label) {
    state.choice = label;
    const entry = state.entries[state.index];
    for (const button of $("review-answers").querySelectorAll("[data-label]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.label) === label));
    }
    const source = entry && label !== null ? boxesSource(entry, label) : null;
    for (const panel of $("review-panels").querySelectorAll("[data-annotation]")) {
      panel.classList.toggle("chosen", source !== null && panel.dataset.annotation === String(source.annotation_id));
    }
    $("review-confirm").disabled = label === null;
    $("review-choice").textContent =
      label === null
        ? "Pick a decision, then Enter."
        : `Decision: ${answerName(label)}${source ? ` with ${source.annotator}'s ${source.boxes.length} box(es)` : ""}. Enter confirms.`;
  }

  async function confirm() {
    const entry = state.entries[state.index];
    if (!entry || state.choice === null || state.busy) return;
    const source = boxesSource(entry, state.choice);
    state.busy = true;
    $("review-confirm").disabled = true;
    try {
      await api("POST", `${base}/items/${entry.item.id}/review`, {
        label: state.choice,
        boxes: source ? source.boxes : [],
        note: $("review-note").value.trim(),
      });
      status(`Decided ${entry.item.external_id}: ${answerName(state.choice)}.`);
      $("review-note").value = "";
      state.entries.splice(state.index, 1);
      renderList();
      select(Math.min(state.index, state.entries.length - 1));
    } catch (err) {
      status(`Not saved: ${err.message}`, true);
      $("review-confirm").disabled = false;
    } finally {
      state.busy = false;
    }
  }

  function onKey(event) {
    if (event.target.id === "review-note" && event.key === "Enter") {
      event.preventDefault();
      confirm();
      return;
    }
    if (event.target.id === "review-note" && event.key === "Escape") {
      event.target.blur();
      return;
    }
    if (event.target.closest("input, textarea, select, [contenteditable]") || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === "j" || key === "ArrowDown") select(state.index + 1);
    else if (key === "k" || key === "ArrowUp") select(state.index - 1);
    else if (/^[1-9]$/.test(key) && config.answers[Number(key) - 1]) choose(config.answers[Number(key) - 1].label);
    else if (key === "n") $("review-note").focus();
    else if (key === "Enter") confirm();
    else return;
    event.preventDefault();
  }

  async function load() {
    try {
      state.entries = await api("GET", `${base}/review?limit=200`);
      renderList();
      select(0);
    } catch (err) {
      status(`Could not load the review queue: ${err.message}`, true);
    }
  }

  for (const button of $("review-answers").querySelectorAll("[data-label]")) {
    button.addEventListener("click", () => choose(Number(button.dataset.label)));
  }
  $("review-confirm").addEventListener("click", confirm);
  document.addEventListener("keydown", onKey);
  load();
})();
