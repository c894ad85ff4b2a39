// Project creation and settings: the form posts JSON to the projects API; members are added and removed inline.
(() => {
  "use strict";

  const api = window.hardcaseApi;

  function value(input) {
    const raw = input.value.trim();
    switch (input.dataset.type) {
      case "list":
        return raw.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
      case "int":
        return raw === "" ? null : Number.parseInt(raw, 10);
      case "float":
        return raw === "" ? null : Number.parseFloat(raw);
      default:
        return raw;
    }
  }

  function bindProjectForm() {
    const form = document.getElementById("project-form");
    if (!form) return;
    const creating = form.dataset.method === "POST";
    const errors = document.getElementById("form-errors");
    const status = document.getElementById("form-status");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.hidden = true;
      status.textContent = "";
      const body = {};
      for (const input of form.querySelectorAll("[name]")) {
        if (input.readOnly || (!creating && input.hasAttribute("data-create-only"))) continue;
        const v = value(input);
        if (v !== null && !(v === "" && input.name === "question")) body[input.name] = v;
      }
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      try {
        const saved = await api(form.dataset.method, form.dataset.url, body);
        if (creating) {
          window.location.assign(`/projects/${encodeURIComponent(saved.name)}/settings?created=1`);
          return;
        }
        status.textContent = saved.rerank ? "Saved; the queue is being re-ranked." : "Saved.";
      } catch (err) {
        errors.textContent = err.message;
        errors.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }

  function bindMembers() {
    const table = document.getElementById("members");
    if (!table) return;
    const url = table.dataset.membersUrl;
    const errors = document.getElementById("member-errors");
    const run = async (method, userId) => {
      errors.hidden = true;
      try {
        await api(method, `${url}/${userId}`);
        window.location.reload();
      } catch (err) {
        errors.textContent = err.message;
        errors.hidden = false;
      }
    };
    for (const button of table.querySelectorAll("[data-remove-member]")) {
      button.addEventListener("click", () => run("DELETE", button.dataset.removeMember));
    }
    const add = document.getElementById("member-add");
    if (add) add.addEventListener("click", () => run("PUT", document.getElementById("member-select").value));
  }

  bindProjectForm();
  bindMembers();
})();
