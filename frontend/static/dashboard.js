// Dashboard behaviour: JSON forms with the CSRF header, live job progress (polling the jobs API), actions.
(() => {
  "use strict";
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

  const api = window.hardcaseApi;

  // --- typed values from inputs --------------------------------------------------------------------------
  function parseValue(input) {
    const type = input.dataset.type || "str";
    if (type === "bool") return input.checked;
    const raw = input.value.trim();
    if (raw === "") return type === "list" ? [] : null;
    if (type === "int") return parseInt(raw, 10);
    if (type === "float") return parseFloat(raw);
    if (type === "json") return JSON.parse(raw);
    if (type === "list") return raw.split(",").map((s) => s.trim()).filter(Boolean);
    if (type === "datetime") return new Date(raw).toISOString();
    return raw;
  }

  function changed(input) {
    const now = input.dataset.type === "bool" ? String(input.checked) : input.value.trim();
    return now !== (input.dataset.default ?? "");
  }

  function formBody(form) {
    const body = {};
    for (const input of form.querySelectorAll("[name]")) {
      if (input.disabled || input.closest("fieldset[disabled]") || input.hasAttribute("data-config")) continue;
      const value = parseValue(input);
      if (value !== null) body[input.name] = value;
    }
    if (form.hasAttribute("data-job-form")) {
      body.config = {};
      for (const input of form.querySelectorAll("fieldset:not([disabled]) [data-config]")) {
        if (changed(input)) body.config[input.name] = parseValue(input);
      }
    }
    return body;
  }

  function bindJsonForms() {
    for (const form of document.querySelectorAll("form[data-json-post]")) {
      const errors = form.querySelector("[data-errors]");
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = form.querySelector('button[type="submit"]');
        if (errors) errors.textContent = "";
        let body;
        try {
          body = formBody(form);
        } catch (err) {
          if (errors) errors.textContent = `Invalid value: ${err.message}`;
          return;
        }
        button && (button.disabled = true);
        try {
          const created = await api("POST", form.dataset.jsonPost, body);
          const then = form.dataset.then || "reload";
          if (then === "reload") window.location.reload();
          else window.location.assign(then.replace("{id}", created.id));
        } catch (err) {
          if (errors) errors.textContent = err.message;
        } finally {
          button && (button.disabled = false);
        }
      });
    }
    for (const select of document.querySelectorAll("[data-kind-select]")) {
      const show = () => {
        for (const fieldset of select.form.querySelectorAll("fieldset[data-kind]")) {
          const active = fieldset.dataset.kind === select.value;
          fieldset.hidden = !active;
          fieldset.disabled = !active;
        }
      };
      select.addEventListener("change", show);
      show();
    }
  }

  // --- progress rendering shared by the jobs list and the job page ---------------------------------------
  const seconds = (s) => (s === null || s === undefined ? "—" : `${Math.round(s)} s`);

  function updateProgress(root, job) {
    const bar = root.querySelector(".progress");
    const fill = root.querySelector(".progress-fill");
    if (bar && fill) {
      const share = job.progress.total ? job.progress.fraction : job.status === "succeeded" ? 1 : 0;
      fill.style.width = `${(100 * share).toFixed(1)}%`;
      fill.className = `progress-fill status-${job.status}`;
      bar.setAttribute("aria-valuenow", String(Math.round(100 * share)));
    }
    const status = root.querySelector("[data-status]");
    if (status) {
      status.textContent = job.status;
      status.className = `status status-${job.status}`;
    }
    const set = (selector, text) => {
      const el = root.querySelector(selector);
      if (el) el.textContent = text;
    };
    set("[data-steps]", `${job.progress.step} / ${job.progress.total || "?"}`);
    set("[data-eta]", seconds(job.progress.eta_s));
    set("[data-elapsed]", seconds(job.progress.elapsed_s));
    set("[data-fraction]", `${(100 * job.progress.fraction).toFixed(1)}%`);
  }

  function pollJobsTable() {
    const table = document.querySelector("table[data-poll]");
    if (!table) return;
    const tick = async () => {
      const rows = [...table.querySelectorAll("tr[data-job-id]")];
      const open = rows.some((row) => !FINISHED.has(row.querySelector("[data-status]")?.textContent.trim()));
      if (!open) return;
      try {
        const jobs = await api("GET", table.dataset.poll);
        const known = new Set(rows.map((row) => row.dataset.jobId));
        if (jobs.some((job) => !known.has(String(job.id)))) return window.location.reload();
        for (const job of jobs) {
          const row = table.querySelector(`tr[data-job-id="${job.id}"]`);
          if (!row) continue;
          const before = row.querySelector("[data-status]")?.textContent.trim();
          updateProgress(row, job);
          if (before !== job.status && FINISHED.has(job.status)) return window.location.reload();
        }
      } catch (err) {
        console.warn("jobs poll failed", err);
      }
      setTimeout(tick, 2000);
    };
    setTimeout(tick, 1500);
  }

  // The header facts the API reports (attempt, start, finish, worker): same format as the server's `when`.
  function utcMinute(iso) {
    if (!iso) return null;
    const zoned = /[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`; // SQLite gives naive UTC datetimes
    return new Date(zoned).toISOString().slice(0, 16).replace("T", " ");
  }

  function setMoment(el, iso) {
    if (!el) return;
    const text = utcMinute(iso);
    if (!text) {
      el.textContent = "—";
      return;
    }
    const time = document.createElement("time");
    time.dateTime = iso;
    time.textContent = text;
    el.replaceChildren(time);
  }

  function updateJobHeader(page, job) {
    const set = (selector, text) => {
      const el = page.querySelector(selector);
      if (el) el.textContent = text;
    };
    set("[data-attempts]", String(job.attempts));
    set("[data-max-attempts]", String(job.max_attempts));
    set("[data-worker]", job.worker_id || "—");
    // the worker logs "HH:MM:SS device: cpu" (or cuda:0 (...)) when an attempt starts: the truth, not the queue
    const devices = [...(job.log_tail || "").matchAll(/^\d\d:\d\d:\d\d device: (.+)$/gm)];
    if (devices.length) set("[data-device]", `device ${devices[devices.length - 1][1]}`);
    setMoment(page.querySelector("[data-started-at]"), job.started_at);
    setMoment(page.querySelector("[data-finished-at]"), job.finished_at);
  }

  function pollJobPage() {
    const page = document.getElementById("job-page");
    if (!page) return;
    const id = page.dataset.jobId;
    let metricCount = Number(page.dataset.metricCount || 0);
    const charts = page.querySelector("[data-charts-slot]");
    const refreshCharts = async () => {
      const response = await fetch(charts.dataset.src, { credentials: "same-origin" });
      if (response.ok) charts.innerHTML = await response.text();
    };
    const tick = async () => {
      try {
        const job = await api("GET", `/api/v1/jobs/${id}`);
        updateProgress(page, job);
        updateJobHeader(page, job);
        const log = page.querySelector("[data-log]");
        if (log && job.log_tail !== undefined) {
          const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          log.textContent = job.log_tail || "(empty)";
          if (atBottom) log.scrollTop = log.scrollHeight;
        }
        const error = page.querySelector("[data-error]");
        if (error) {
          error.hidden = !job.error;
          error.textContent = job.error || "";
        }
        const count = Object.values(job.metrics || {}).reduce((n, points) => n + points.length, 0);
        if (count !== metricCount) {
          metricCount = count;
          await refreshCharts();
        }
        if (FINISHED.has(job.status)) {
          page.dataset.finished = "true";
          const cancel = page.querySelector("[data-cancel]");
          if (cancel) cancel.disabled = true;
          if (job.model_version) {
            const model = page.querySelector("[data-model]");
            if (model) model.innerHTML = `<a href="/projects/${encodeURIComponent(job.project)}/models?version=${job.model_version}">v${job.model_version}</a>`;
          }
          return;
        }
      } catch (err) {
        console.warn("job poll failed", err);
      }
      setTimeout(tick, 1500);
    };
    const log = page.querySelector("[data-log]");
    if (log) log.scrollTop = log.scrollHeight;
    if (page.dataset.finished !== "true") setTimeout(tick, 1000);
  }

  // --- buttons that POST: cancel a job, promote or roll back a model ---------------------------------
  function bindActions() {
    for (const button of document.querySelectorAll("[data-cancel]")) {
      button.addEventListener("click", async () => {
        if (!window.confirm("Cancel this job? A running job stops at its next step.")) return;
        button.disabled = true;
        try {
          await api("POST", button.dataset.cancel);
        } catch (err) {
          window.alert(err.message);
          button.disabled = false;
        }
      });
    }
    // Promote and roll back: confirm, POST, reload to show the new stages.
    for (const button of document.querySelectorAll("[data-promote], [data-post]")) {
      button.addEventListener("click", async () => {
        let body = {};
        if (button.hasAttribute("data-force")) {
          // the gate refused: an admin may override it, and the reason is kept in the stage history
          const reason = window.prompt(button.dataset.force);
          if (!reason || !reason.trim()) return;
          body = { force: true, reason: reason.trim() };
        } else if (!window.confirm(button.dataset.confirm || "Promote this model to production?")) return;
        button.disabled = true;
        try {
          await api("POST", button.dataset.promote || button.dataset.post, body);
          window.location.reload();
        } catch (err) {
          window.alert(err.message);
          button.disabled = false;
        }
      });
    }
  }

  bindJsonForms();
  bindActions();
  pollJobsTable();
  pollJobPage();
})();
