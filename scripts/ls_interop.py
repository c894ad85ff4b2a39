"""A real Label Studio against a real Hardcase, both on 127.0.0.1 (run through scripts/ls_interop.sh).

Hardcase (`hardcase up`: API, worker, embedded Redis) gets a project with five photos and the cascade's scores;
Label Studio gets a project whose tasks name those items, connects Hardcase as its ML backend (Basic auth
with a Hardcase key), retrieves predictions, sorts by prediction score, and its annotations (created,
updated, deleted through Label Studio's API) and its "Start training" reach Hardcase through its webhook.
Every step prints what it saw; the first broken expectation stops the run with exit status 1.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single"><Choice value="negative"/><Choice value="positive"/></Choices>
  <RectangleLabels name="box" toName="image"><Label value="cone"/></RectangleLabels>
</View>"""
EMAIL, PASSWORD = "admin@example.com", "interop-pass-1"


def default_label_studio() -> Path:
    """Where scripts/ls_interop.sh installs Label Studio (LSVENV overrides it)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = Path(os.environ.get("LSVENV") or cache / "hardcase" / "label-studio-1.23.2")
    return venv / "bin" / "label-studio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(condition: bool, what: str) -> None:
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        raise SystemExit(1)


def wait_for(url: str, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"{what} did not answer at {url} within {timeout_s:.0f}s")


def poll(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            check(True, what)
            return value
        time.sleep(0.5)
    check(False, f"{what} (waited {timeout_s:.0f}s)")
    return None


def png(shade: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, 120, 40)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class Hardcase:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HARDCASE_DATA_DIR": str(folder)}
        self.env.pop("HARDCASE_DATABASE_URL", None)
        self.env.pop("HARDCASE_BROKER_URL", None)
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *args], env=self.env, cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"hardcase {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def start(self, log: Path) -> None:
        self.cli("db", "upgrade")
        self.cli("projects", "create", "roadwork", "--box-classes", "cone")
        self.ls_key = json.loads(
            self.cli("keys", "create", "ls", "--project", "roadwork", "--scopes", "read,ingest")
        )["key"]
        self.cascade_key = json.loads(self.cli("keys", "create", "cascade", "--scopes", "ingest,read"))["key"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", "--port", str(self.port)],
            env=self.env,
            cwd=ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(f"{self.url}/healthz", 120, "Hardcase")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class LabelStudio:
    def __init__(self, executable: str, folder: Path) -> None:
        self.executable, self.folder = executable, folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=120, follow_redirects=True)

    def start(self, log: Path) -> None:
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.folder),
            "SSRF_PROTECTION_ENABLED": "false",  # its webhooks may reach 127.0.0.1
            "ML_BLOCK_LOCAL_IP": "false",  # and so may its ML backend calls
        }
        self.proc = subprocess.Popen(
            [
                self.executable,
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--username",
                EMAIL,
                "--password",
                PASSWORD,
            ],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(f"{self.url}/health", 600, "Label Studio")

    def log_in(self) -> None:
        self.http.get("/user/login/")
        token = self.http.cookies.get("csrftoken")
        response = self.http.post(
            "/user/login/",
            data={"email": EMAIL, "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.url}/user/login/"},
        )
        check(response.status_code == 200 and "sessionid" in self.http.cookies, "logged in to Label Studio")
        self.http.headers["X-CSRFToken"] = self.http.cookies.get("csrftoken")
        self.http.headers["Referer"] = self.url

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise SystemExit(f"Label Studio {method} {path}: {response.status_code} {response.text[:800]}")
        return response

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def seed_hardcase(hc: Hardcase) -> list[str]:
    scores = [0.5, 0.95, 0.6, 0.02, 0.7]
    items = [
        {
            "external_id": f"frame-{i}",
            "image": {"base64": png(40 * i)},
            "predictions": [
                {
                    "model": "yolo",
                    "model_version": "8",
                    "score": s,
                    "boxes": [[0.1, 0.2, 0.5, 0.6, "cone", 0.8]],
                },
                {"model": "clf", "model_version": "1", "score": 1 - s if i == 0 else s},
            ],
        }
        for i, s in enumerate(scores)
    ]
    response = httpx.post(
        f"{hc.url}/api/v1/projects/roadwork/predictions",
        json={"items": items},
        headers={"X-API-Key": hc.cascade_key},
    )
    check(response.status_code == 201, f"Hardcase ingested {len(items)} photos")
    return [item["external_id"] for item in items]


def hardcase_priorities(hc: Hardcase) -> dict[str, float]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{hc.env['HARDCASE_DATA_DIR']}/hardcase.db")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT i.external_id, h.priority FROM hardness h JOIN items i ON i.id = h.item_id")
        )
        return dict(rows.all())


def hardcase_annotations(hc: Hardcase) -> list[tuple]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{hc.env['HARDCASE_DATA_DIR']}/hardcase.db")
    with engine.connect() as conn:
        query = text(
            "SELECT u.username, i.external_id, a.label, a.state FROM annotations a JOIN users u ON u.id = "
            "a.annotator_id JOIN items i ON i.id = a.item_id ORDER BY a.id"
        )
        return [tuple(r) for r in conn.execute(query).all()]


def hardcase_jobs(hc: Hardcase) -> list[tuple]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{hc.env['HARDCASE_DATA_DIR']}/hardcase.db")
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, kind, status FROM jobs")).all()]


def first_version(ls: LabelStudio, project_id: int) -> str:
    tasks = ls.api("GET", "/api/tasks", params={"project": project_id, "fields": "all"}).json()
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    return next(p["model_version"] for t in tasks for p in t.get("predictions") or [])


def choice(value: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [value]}}]


def run(ls: LabelStudio, hc: Hardcase) -> None:
    external_ids = seed_hardcase(hc)
    ls.log_in()
    project = ls.api("POST", "/api/projects", json={"title": "roadwork", "label_config": CONFIG}).json()
    tasks = [
        {"data": {"image": f"{hc.url}/api/v1/projects/roadwork/items/{e}/image", "external_id": e}}
        for e in external_ids
    ]
    ls.api("POST", f"/api/projects/{project['id']}/import", json=tasks)
    backend = ls.api(
        "POST",
        "/api/ml",
        json={
            "project": project["id"],
            "url": f"{hc.url}/ls/roadwork",
            "title": "Hardcase",
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": "hardcase",
            "basic_auth_pass": hc.ls_key,
        },
    ).json()
    check(
        backend.get("state") in ("CO", "CONNECTED", None),
        f"ML backend connected (state {backend.get('state')})",
    )
    hooks = ls.api("GET", "/api/webhooks", params={"project": project["id"]}).json()
    hook = next((h for h in hooks if h["url"].endswith("/webhook")), None)
    check(hook is not None, "Label Studio made the ML backend's webhook")
    ls.api("PATCH", f"/api/webhooks/{hook['id']}", json={"headers": {"Authorization": f"Bearer {hc.ls_key}"}})

    ls.api(
        "POST",
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": project["id"]},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    # Settings -> Annotation -> prelabeling model: what the Data Manager's prediction score column averages
    ls.api(
        "PATCH", f"/api/projects/{project['id']}", json={"model_version": first_version(ls, project["id"])}
    )
    view = ls.api(
        "POST",
        "/api/dm/views",
        json={"project": project["id"], "data": {"ordering": ["tasks:predictions_score"]}},
    ).json()
    listed = ls.api(
        "GET", "/api/tasks", params={"project": project["id"], "view": view["id"], "fields": "all"}
    ).json()
    ordered = listed["tasks"] if isinstance(listed, dict) else listed
    with_predictions = [t for t in ordered if t.get("predictions")]
    check(
        len(with_predictions) == len(external_ids),
        f"every task has Hardcase's prediction ({len(with_predictions)})",
    )
    first = with_predictions[0]["predictions"][0]
    check(first["model_version"] == "hardcase/roadwork/cascade", f"model version {first['model_version']}")
    priorities = hardcase_priorities(hc)
    stored = {t["data"]["external_id"]: t["predictions"][0]["score"] for t in with_predictions}
    print(
        f"      view: {view.get('data')}\n      scores in Label Studio: {stored}\n      priorities: {priorities}"
    )
    by_score = sorted(stored, key=stored.get)
    hardest_first = sorted(external_ids, key=lambda e: -priorities[e])
    view_order = [t["data"]["external_id"] for t in ordered]
    print(
        f"      Data Manager view order: {view_order}\n      by stored score: {by_score}\n      hardest first: {hardest_first}"
    )
    check(
        by_score == hardest_first,
        "Label Studio's prediction scores, lowest first, are Hardcase's hardest first",
    )
    check(
        view_order == hardest_first,
        "Label Studio's Data Manager sorted by prediction score lists hardest first",
    )
    boxes = [r for r in first["result"] if r["type"] == "rectanglelabels"]
    check(bool(boxes) and boxes[0]["value"]["x"] == 10.0, "boxes arrive in percent coordinates")

    task_ids = {t["data"]["external_id"]: t["id"] for t in ordered}
    target = hardest_first[0]
    created = ls.api(
        "POST",
        f"/api/tasks/{task_ids[target]}/annotations",
        json={"result": choice("positive"), "lead_time": 2.5},
    ).json()
    user = f"ls:{created['completed_by']}"
    poll(
        lambda: (user, target, 1, "current") in hardcase_annotations(hc),
        60,
        f"annotation reached Hardcase as {user}",
    )
    ls.api("PATCH", f"/api/annotations/{created['id']}", json={"result": choice("negative")})
    poll(
        lambda: (
            hardcase_annotations(hc)[-2:] == [(user, target, 1, "superseded"), (user, target, 0, "current")]
        ),
        60,
        "the update superseded it (history kept)",
    )
    ls.api("DELETE", f"/api/annotations/{created['id']}")
    poll(
        lambda: hardcase_annotations(hc)[-1] == (user, target, 0, "retracted"),
        60,
        "the deletion retracted it",
    )

    for n, external_id in enumerate(external_ids):
        ls.api(
            "POST",
            f"/api/tasks/{task_ids[external_id]}/annotations",
            json={"result": choice(["negative", "positive"][n % 2])},
        )
    poll(
        lambda: sum(a[3] == "current" for a in hardcase_annotations(hc)) == len(external_ids),
        60,
        "every label reached Hardcase",
    )
    ls.api("POST", f"/api/ml/{backend['id']}/train", json={})
    jobs = poll(lambda: hardcase_jobs(hc), 60, "Start Training queued a Hardcase job")
    print(f"      jobs: {jobs}")
    hc.cli("jobs", "cancel", str(jobs[0][0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label-studio", default=str(default_label_studio()))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ls-interop-"))
    hc, ls = Hardcase(folder / "hardcase"), LabelStudio(args.label_studio, folder / "label-studio")
    ok = False
    try:
        print(f"logs in {folder}", flush=True)
        hc.start(folder / "hardcase.log")
        ls.start(folder / "label-studio.log")
        run(ls, hc)
        print("Label Studio and Hardcase interoperate.")
        ok = True
        return 0
    finally:
        ls.stop()
        hc.stop()
        if ok and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)  # a failed run keeps its logs


if __name__ == "__main__":
    sys.exit(main())
