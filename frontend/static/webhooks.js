// Webhooks page: add an endpoint (shows its secret once), send a test event, enable/disable, delete.
(() => {
  "use strict";
  const section = document.getElementById("webhooks");
  if (!section) return;
  const base = `/api/v1/projects/${encodeURIComponent(section.dataset.project)}/webhooks`;
  const status = document.getElementById("webhook-status");

  const call = window.hardcaseApi;

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
