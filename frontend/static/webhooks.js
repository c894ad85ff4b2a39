// Webhooks page: add an endpoint (shows its secret once), send a test event, enable/disable, delete.
(() => {
  "use strict";
  const section = document.getElementById("webhooks");
  if (!section) return;
  const base = `/api/v1/projects/${encodeURIComponent(section.dataset.project)}/webhooks`;
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const status = document.getElementById("webhook-status");

  async function call(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json", "X-CSRF-Token": csrf() } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (!response.ok) {
      const errors = (data.errors || []).map((e) => `${e.field}: ${e.message}`);
      throw new Error(errors.join("; ") || data.detail || `HTTP ${response.status}`);
    }
    return data;
  }

  const form = document.getElementById("webhook-create");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = form.querySelector("[data-errors]");
    errors.textContent = "";
    const body = {
      url: form.elements.url.value.trim(),
      events: [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value),
      description: form.elements.description.value.trim(),
    };
    try {
      const created = await call("POST", base, body);
      const secret = document.getElementById("webhook-secret");
      secret.hidden = false;
      secret.textContent = `Signing secret (shown once, copy it to the receiver): ${created.secret}`;
      form.querySelector('button[type="submit"]').disabled = true;
    } catch (err) {
      errors.textContent = err.message;
    }
  });

  section.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    try {
      if (button.dataset.webhookTest) {
        const delivery = await call("POST", `${base}/${button.dataset.webhookTest}/test`);
        status.textContent = `Test event queued as delivery ${delivery.id}; reload to see its status.`;
      } else if (button.dataset.webhookToggle) {
        await call("PATCH", `${base}/${button.dataset.webhookToggle}`, { is_active: button.dataset.active !== "true" });
        window.location.reload();
      } else if (button.dataset.webhookDelete && window.confirm("Delete this webhook and its delivery log?")) {
        await call("DELETE", `${base}/${button.dataset.webhookDelete}`);
        window.location.reload();
      }
    } catch (err) {
      status.textContent = err.message;
    }
  });
})();
