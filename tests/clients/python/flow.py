"""The Python flow of the generated-client tests: the client is what openapi-python-client
generated from the live spec (importable as `offload_client`), used as a user would.

Usage: python flow.py BASE_URL DECK_PATH
"""

import sys
import time
import uuid

from offload_client import Client
from offload_client.api.exports import create_export
from offload_client.api.jobs import cancel_job, create_job, get_job, get_job_result, list_jobs
from offload_client.models import (
    ApiErrorCode,
    CreateExportBody,
    ErrorBody,
    ExportOptions,
    Job,
    JobStatus,
    PdfA,
    SleepArgs,
    SleepJob,
    SleepJobKind,
)
from offload_client.types import File

FINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


def main(base: str, deck_path: str) -> None:
    client = Client(base_url=base, raise_on_unexpected_status=True)

    with open(deck_path, "rb") as deck:
        body = CreateExportBody(
            file=[File(payload=deck, file_name="deck5.pptx")],
            options=ExportOptions(page_range="1-2", pdf_a=PdfA("2b")),
        )
        job = create_export.sync(client=client, body=body)
    assert isinstance(job, Job), job
    assert job.status == JobStatus.QUEUED
    assert job.options.page_range == "1-2" and job.options.pdf_a == PdfA("2b"), job.options

    deadline = time.monotonic() + 120
    while job.status not in FINAL:
        assert time.monotonic() < deadline, "the job finishes within two minutes"
        time.sleep(0.2)
        job = get_job.sync(client=client, id=job.id)
        assert isinstance(job, Job), job
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert [(s.name, s.status.value) for s in job.steps] == [
        ("inspect", "done"), ("convert", "done"), ("publish", "done")
    ], job.steps

    pdf = get_job_result.sync(client=client, id=job.id)
    assert isinstance(pdf, File), pdf
    assert pdf.payload.read(5) == b"%PDF-"

    page = list_jobs.sync(client=client, limit=10)
    assert any(j.id == job.id for j in page.jobs)

    sleeping = create_job.sync(client=client, body=SleepJob(kind=SleepJobKind.SLEEP, args=SleepArgs(seconds=30.0)))
    assert isinstance(sleeping, Job), sleeping
    cancelled = cancel_job.sync(client=client, id=sleeping.id)
    assert isinstance(cancelled, Job) and cancelled.status == JobStatus.CANCELLED, cancelled

    missing = get_job.sync(client=client, id=uuid.uuid4())
    assert isinstance(missing, ErrorBody), missing
    assert missing.code == ApiErrorCode.JOB_NOT_FOUND

    print("python client flow: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
