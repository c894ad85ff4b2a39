// Retraining policy: save the form (PUT), pause/resume, run now; approve or reject held runs.
(() => {
  "use strict";
  const root = document.getElementById("loop-policy") || document.getElementById("loop-runs");
  if (!root) return;
  const base = `/api/v1/projects/${encodeURIComponent(root.dataset.project)}`;

  const call = window.hardcaseApi;

  const form = document.getElementById("policy-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errors = form.querySelector("[data-errors]");
      errors.textContent = "";
      const f = form.elements;
      const number = (input) => (input.value.trim() === "" ? null : Number(input.value));
      let jobs;
      try {
        jobs = JSON.parse(f.jobs.value);
      } catch (err) {
        errors.textContent = `jobs: not valid JSON (${err.message})`;
        return;
      }
      const body = {
        new_labels: number(f.new_labels),
        schedule: f.schedule.value.trim() || null,
        on_drift: f.on_drift.checked,
        jobs,
        require_improvement: f.require_improvement.checked,
        min_holdout_items: number(f.min_holdout_items),
        slice_keys: f.slice_keys.value.split(",").map((s) => s.trim()).filter(Boolean),
        slice_tolerance: number(f.slice_tolerance),
        auto_promote: f.auto_promote.checked,
        max_runs_per_day: number(f.max_runs_per_day),
      };
      try {
        await call("PUT", `${base}/policy`, body);
        window.location.reload();
      } catch (err) {
        errors.textContent = err.message;
      }
    });
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const errors = document.querySelector("#loop-policy [data-errors]") || document.getElementById("loop-runs-errors");
    try {
      if (button.dataset.policyAction === "run") {
        await call("POST", `${base}/loop/runs`, { note: "started on the policy page" });
      } else if (button.dataset.policyAction) {
        await call("POST", `${base}/policy/${button.dataset.policyAction}`);
      } else if (button.dataset.runApprove) {
        await call("POST", `${base}/loop/runs/${button.dataset.runApprove}/approve`, { note: "" });
      } else if (button.dataset.runReject) {
        const note = window.prompt("Why reject it?") || "";
        await call("POST", `${base}/loop/runs/${button.dataset.runReject}/reject`, { note });
      } else {
        return;
      }
      window.location.reload();
    } catch (err) {
      if (errors) errors.textContent = err.message;
    }
  });
})();
