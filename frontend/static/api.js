// The JSON API as the dashboard pages call it: same-origin session, CSRF header on writes, errors named by field.
(() => {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  window.hardcaseApi = async function api(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrf();
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
  };
})();
