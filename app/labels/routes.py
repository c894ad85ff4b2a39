"""Label endpoints: submit/correct/undo annotations, flag, review, item history, agreement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.auth import permissions as can
from app.deps import IdPath, ProjectDep, SessionDep, SettingsDep
from app.labels import service
from app.labels.review import review_queue
from app.labels.schemas import (
    AgreementReport,
    AnnotationCreated,
    AnnotationIn,
    AnnotationRead,
    ConsensusRead,
    FlagIn,
    FlagRead,
    ItemHistory,
    ReviewCreated,
    ReviewEntry,
    ReviewIn,
    ReviewRead,
    ReviewTask,
    UndoResult,
)
from app.queue.service import hardness_of, item_payload

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["labels"])


@router.post("/items/{item_id}/annotations", response_model=AnnotationCreated, status_code=201)
def annotate(
    item_id: IdPath, body: AnnotationIn, user: can.ItemLabeler, project: ProjectDep, session: SessionDep
) -> AnnotationCreated:
    """Appends a label; needs the caller's live lease unless it corrects (`supersedes`) their own label."""
    annotation, status = service.submit_annotation(
        db_session=session,
        project=project,
        user=user,
        item_id=item_id,
        label=body.label,
        boxes=body.boxes,
        duration_ms=body.duration_ms,
        supersedes_id=body.supersedes,
    )
    return AnnotationCreated(annotation=AnnotationRead.model_validate(annotation), item_status=status)


@router.post("/annotations/{annotation_id}/undo", response_model=UndoResult)
def undo(
    annotation_id: IdPath,
    user: can.AnnotationLabeler,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
) -> UndoResult:
    """Retracts the caller's latest annotation (kept in history) and leases its item back to them."""
    lease = service.undo_annotation(
        db_session=session,
        project=project,
        user=user,
        annotation_id=annotation_id,
        lease_minutes=settings.lease_minutes,
    )
    payload = item_payload(db_session=session, project=project, item_id=lease.item_id)
    return UndoResult.model_validate(
        {"retracted": annotation_id, "item": payload, "lease_expires_at": lease.expires_at}
    )


@router.post("/items/{item_id}/flag", response_model=FlagRead, status_code=201)
def flag(
    item_id: IdPath, body: FlagIn, user: can.ItemLabeler, project: ProjectDep, session: SessionDep
) -> FlagRead:
    found = service.flag_item(
        db_session=session, project=project, user=user, item_id=item_id, reason=body.reason
    )
    return FlagRead.model_validate(found)


def _history(session, project, item_id: int) -> ItemHistory:
    history = service.item_history(db_session=session, project=project, item_id=item_id)
    return ItemHistory.model_validate(history, from_attributes=True)


@router.get(
    "/review/next", response_model=ReviewTask, responses={204: {"description": "nothing waits for review"}}
)
def next_review(
    _reviewer: can.ProjectReviewer, project: ProjectDep, session: SessionDep
) -> ReviewTask | Response:
    item_id = service.next_for_review(db_session=session, project=project)
    if item_id is None:
        return Response(status_code=204)
    consensus = service.consensus_for_items(db_session=session, project=project, item_ids=[item_id])[item_id]
    return ReviewTask.model_validate(
        {
            "item": item_payload(db_session=session, project=project, item_id=item_id),
            "consensus": ConsensusRead(label=consensus.label, source=consensus.source, votes=consensus.votes),
            "history": _history(session, project, item_id),
        }
    )


@router.get("/review", response_model=list[ReviewEntry])
def review_list(
    _reviewer: can.ProjectReviewer,
    project: ProjectDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ReviewEntry]:
    """Flagged, skipped-out and conflicting items, hardest first, with every annotator's answer and boxes."""
    entries = review_queue(db_session=session, project=project, limit=limit)
    return [ReviewEntry.model_validate(entry) for entry in entries]


@router.post("/items/{item_id}/review", response_model=ReviewCreated, status_code=201)
def review(
    item_id: IdPath, body: ReviewIn, reviewer: can.ItemReviewer, project: ProjectDep, session: SessionDep
) -> ReviewCreated:
    """A reviewer's decision: final over the annotators' labels, recorded with who and when."""
    decision = service.record_review(
        db_session=session,
        project=project,
        reviewer=reviewer,
        item_id=item_id,
        label=body.label,
        boxes=body.boxes,
        note=body.note,
    )
    status = hardness_of(db_session=session, project=project, item_id=item_id).status
    return ReviewCreated(review=ReviewRead.model_validate(decision), item_status=status)


@router.get("/items/{item_id}/history", response_model=ItemHistory)
def history(
    item_id: IdPath, _reviewer: can.ItemReviewer, project: ProjectDep, session: SessionDep
) -> ItemHistory:
    hardness_of(db_session=session, project=project, item_id=item_id)
    return _history(session, project, item_id)


@router.get("/agreement", response_model=AgreementReport)
def agreement(_reviewer: can.ProjectReviewer, project: ProjectDep, session: SessionDep) -> AgreementReport:
    """Cohen's κ per annotator pair, Fleiss' κ, agreement with consensus, per-annotator throughput."""
    return AgreementReport.model_validate(service.agreement_report(db_session=session, project=project))
