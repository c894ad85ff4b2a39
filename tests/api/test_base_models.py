"""The base-model catalogue: what jobs can really start from here, and 422 at submission for anything else."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest

from tests.api.test_jobs import project_with_dataset

JOBS = "/api/v1/projects/roadwork/jobs"
WARM = {"kind": "classifier_lora", "dataset_version": 1}
VIT_CONFIG = {"model_type": "vit", "architectures": ["ViTForImageClassification"]}


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path, monkeypatch):
    """A machine without a model hub cache, whatever this one has cached."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


def fake_model_folder(path, config: dict) -> str:
    """A model folder as the catalogue sees it (config files only: listing never loads weights)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def fake_hub_cache(root, repo_id: str, config: dict) -> None:
    """The on-disk layout huggingface_hub writes for a downloaded repo (refs/main -> snapshots/<commit>)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    fake_model_folder(repo / "snapshots" / "abc123", config)


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["name"]: row for row in rows}


def test_the_catalogue_lists_builtins_and_the_models_directory_with_the_method_each_gets(app, db, settings):
    local = fake_model_folder(settings.resolved_models_dir / "acme" / "vit-roads", VIT_CONFIG)
    _, admin = project_with_dataset(app, db)
    rows = by_name(admin.get("/api/v1/base-models").json())
    small = rows["builtin:vit-small"]
    assert small["source"] == "builtin" and not small["pretrained"] and small["method"] == "full"
    assert {"classifier_lora", "distill"} <= set(small["kinds"]) and "yolo" not in small["kinds"]
    assert rows["tiny-cnn"]["kinds"] == ["distill"] and rows["yolov8n.yaml"]["kinds"] == ["yolo"]
    assert {"vlm_sft", "vlm_dpo"} <= set(rows["builtin:tiny-qwen2-vl"]["kinds"])
    assert rows[local]["source"] == "local" and rows[local]["pretrained"] and rows[local]["method"] == "lora"
    only_yolo = admin.get("/api/v1/base-models", params={"kind": "yolo"}).json()
    assert {row["name"] for row in only_yolo} == {
        "yolov8n.yaml",
        "yolov8s.yaml",
        "yolo11n.yaml",
        "yolo11s.yaml",
    }
    assert admin.get("/api/v1/base-models", params={"kind": "gpt5"}).status_code == 422


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        ("classifier_lora", {"base_model": "google/vit-base-patch16-224-in21k"}, "config.base_model"),
        ("vlm_sft", {"model_name_or_path": "Qwen/Qwen2.5-VL-3B-Instruct"}, "config.model_name_or_path"),
        ("vlm_dpo", {"model_name_or_path": "Qwen/Qwen2.5-VL-3B-Instruct"}, "config.model_name_or_path"),
        ("yolo", {"model": "yolov8n.pt"}, "config.model"),
        ("distill", {"student": "/no/such/student"}, "config.student"),
        ("classifier_lora", {"base_model": "registry:v7"}, "config.base_model"),
        ("classifier_lora", {"base_model": "yolov8n.yaml"}, "config.base_model"),
        ("pretrain", {"base_model": "tiny-cnn"}, "config.base_model"),
    ],
)
def test_a_base_that_is_not_available_here_is_refused_at_submission_with_the_choices(
    app, db, kind, config, field
):
    _, admin = project_with_dataset(app, db)
    response = admin.post(JOBS, json={"kind": kind, "dataset_version": 1, "config": config})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == field
    default = {
        "classifier_lora": "builtin:vit-small",
        "distill": "tiny-cnn",
        "pretrain": "builtin:vit-small",
        "yolo": "yolov8n.yaml",
    }
    assert default.get(kind, "builtin:tiny-qwen2-vl") in error["message"]
    assert admin.get(JOBS).json() == []


def test_the_base_model_field_of_the_body_is_named_when_it_is_the_one_refused(app, db):
    _, admin = project_with_dataset(app, db)
    body = {
        "kind": "classifier_lora",
        "dataset_version": 1,
        "base_model": "google/vit-base-patch16-224-in21k",
    }
    response = admin.post(JOBS, json=body)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "base_model"


def test_every_kind_is_accepted_with_its_defaults_and_with_a_local_folder(app, db, settings, redis_url):
    local = fake_model_folder(settings.resolved_models_dir / "vit-roads", VIT_CONFIG)
    _, admin = project_with_dataset(app, db)
    for kind in ("classifier_lora", "distill", "pretrain", "yolo", "vlm_sft", "vlm_dpo"):
        response = admin.post(JOBS, json={"kind": kind, "dataset_version": 1})
        assert response.status_code == 201, (kind, response.text)
    response = admin.post(JOBS, json={"kind": "classifier_lora", "dataset_version": 1, "base_model": local})
    assert response.status_code == 201, response.text


def test_a_hub_model_in_the_local_cache_is_listed_and_accepted(app, db, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    fake_hub_cache(cache, "google/vit-base-patch16-224-in21k", {"model_type": "vit"})
    _, admin = project_with_dataset(app, db)
    rows = by_name(admin.get("/api/v1/projects/roadwork/base-models?kind=classifier_lora").json())
    assert rows["google/vit-base-patch16-224-in21k"]["source"] == "hub_cache"
    body = {
        "kind": "classifier_lora",
        "dataset_version": 1,
        "base_model": "google/vit-base-patch16-224-in21k",
    }
    assert admin.post(JOBS, json=body).status_code == 201
    body["base_model"] = "google/vit-large-patch16-224"  # not cached: would need a download
    assert admin.post(JOBS, json=body).status_code == 422


def test_the_job_form_offers_the_available_bases_and_defaults_to_a_builtin(app, db):
    _, admin = project_with_dataset(app, db)
    html = admin.get("/projects/roadwork/jobs").text
    assert 'list="bases-classifier_lora"' in html and 'value="builtin:vit-small"' in html
    assert (
        'data-kind="pretrain"' in html and 'list="bases-pretrain"' in html
    )  # its defaults run (worker test)
    assert "google/vit-base" not in html and "Qwen/Qwen2.5-VL-3B" not in html.split('id="job-form"')[1]


def test_registry_versions_and_the_production_model_are_warm_starts_for_compatible_kinds(app, db, tmp_path):
    from tests.api.test_registry import register

    project, admin = project_with_dataset(app, db)
    holdout = {1: 1}
    assert admin.post(JOBS, json={**WARM, "base_model": "registry:production"}).status_code == 422
    register(app, db, project, holdout, tmp_path, skill=0.5, seed=1)  # a distill version with merged/
    promote = {"force": True, "reason": "tiny test holdout"}
    assert admin.post("/api/v1/projects/roadwork/models/1/promote", json=promote).status_code == 200
    rows = by_name(admin.get("/api/v1/projects/roadwork/base-models").json())
    assert {"classifier_lora", "distill"} <= set(rows["registry:v1"]["kinds"])
    assert rows["registry:production"]["description"].endswith("roadwork-distill v1)")
    assert "registry:v1" not in by_name(admin.get("/api/v1/base-models").json())  # no project, no registry
    assert admin.post(JOBS, json={**WARM, "base_model": "registry:production"}).status_code == 201
    assert admin.post(JOBS, json={**WARM, "base_model": "registry:v1"}).status_code == 201
    refused = admin.post(
        JOBS, json={"kind": "yolo", "dataset_version": 1, "config": {"model": "registry:v1"}}
    )
    assert refused.status_code == 422  # a distill model is no detector


def test_the_runner_unpacks_the_production_model_for_a_warm_start(app, db, tmp_path):
    from app.jobs.base_models import unpack_warm_start
    from ml.training.bases import resolve_base
    from tests.api.test_registry import register

    project, admin = project_with_dataset(app, db)
    register(app, db, project, {1: 1}, tmp_path, skill=0.5, seed=1)
    promote = {"force": True, "reason": "tiny test holdout"}
    assert admin.post("/api/v1/projects/roadwork/models/1/promote", json=promote).status_code == 200
    workdir = tmp_path / "job"
    unpack_warm_start(
        db_session=db,
        project_id=project.id,
        reference="registry:production",
        kind="classifier_lora",
        workdir=workdir,
    )
    base = resolve_base("registry:production", workdir)
    assert base.source == "registry" and base.pretrained and base.method == "lora"
    assert (Path(base.path) / "model.safetensors").is_file() and "roadwork-distill v1" in base.label
