"""Requests shaped as Label Studio 1.23 sends them to an ML backend (ml/api_connector.py, webhooks/utils.py)."""

from __future__ import annotations

import base64

LABEL_CONFIG = """<View>
  <Image name="img" value="$photo"/>
  <Choices name="answer" toName="img" choice="single">
    <Choice value="Negative"/><Choice value="Positive"/>
  </Choices>
  <RectangleLabels name="boxes" toName="img"><Label value="cone"/><Label value="sign"/></RectangleLabels>
</View>"""
LS_PROJECT_UID = "7.1764500000"  # '<project id>.<created_at timestamp>'


def basic_auth(secret: str, user: str = "hardcase") -> dict[str, str]:
    """What requests.auth.HTTPBasicAuth(basic_auth_user, basic_auth_pass) puts on the wire."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def ls_task(task_id: int, data: dict) -> dict:
    """TaskSimpleSerializer's fields."""
    return {
        "id": task_id,
        "data": data,
        "meta": {},
        "created_at": "2026-11-30T10:00:00.000000Z",
        "updated_at": "2026-11-30T10:00:00.000000Z",
        "is_labeled": False,
        "overlap": 1,
        "inner_id": task_id,
        "total_annotations": 0,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 7,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
        "annotations": [],
        "predictions": [],
    }


def setup_request(label_config: str = LABEL_CONFIG) -> dict:
    return {
        "project": LS_PROJECT_UID,
        "schema": label_config,
        "hostname": "http://localhost:8080",
        "access_token": "ls-user-token",
        "extra_params": None,
    }


def predict_request(tasks: list[dict], label_config: str = LABEL_CONFIG) -> dict:
    return {
        "tasks": tasks,
        "project": LS_PROJECT_UID,
        "label_config": label_config,
        "params": {"login": None, "password": None, "context": None},
    }


def ls_project(label_config: str = LABEL_CONFIG) -> dict:
    """ProjectWebhookSerializer (fields '__all__' plus counts), the part Hardcase reads."""
    return {"id": 7, "title": "roadwork", "label_config": label_config, "task_number": 3, "model_version": ""}


def choice(value: str) -> dict:
    return {
        "id": "c1",
        "type": "choices",
        "value": {"choices": [value]},
        "origin": "manual",
        "to_name": "img",
        "from_name": "answer",
    }


def rectangle(x: float, y: float, width: float, height: float, label: str) -> dict:
    return {
        "id": "r1",
        "type": "rectanglelabels",
        "value": {
            "x": x,
            "y": y,
            "width": width,
            "height": height,
            "rotation": 0,
            "rectanglelabels": [label],
        },
        "origin": "manual",
        "to_name": "img",
        "from_name": "boxes",
        "image_rotation": 0,
        "original_width": 640,
        "original_height": 480,
    }


def ls_annotation(annotation_id: int, task_id: int, result: list[dict], user_id: int = 1, **fields) -> dict:
    """AnnotationWebhookSerializer (fields '__all__')."""
    return {
        "id": annotation_id,
        "result": result,
        "created_username": f" annotator@example.com, {user_id}",
        "created_ago": "0 minutes",
        "completed_by": user_id,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2026-11-30T10:05:00.000000Z",
        "updated_at": "2026-11-30T10:05:00.000000Z",
        "draft_created_at": None,
        "lead_time": 4.2,
        "import_id": None,
        "last_action": None,
        "bulk_created": False,
        "task": task_id,
        "project": 7,
        "updated_by": user_id,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
        **fields,
    }


def annotation_event(action: str, annotation: dict, task: dict) -> dict:
    """ANNOTATION_CREATED / ANNOTATION_UPDATED: the annotation, its task and the project."""
    return {"action": action, "annotation": annotation, "task": task, "project": ls_project()}


def deleted_event(annotation_ids: list[int]) -> dict:
    """ANNOTATIONS_DELETED carries only the ids (OnlyIDWebhookSerializer)."""
    return {
        "action": "ANNOTATIONS_DELETED",
        "annotations": [{"id": i} for i in annotation_ids],
        "project": ls_project(),
    }
