"""The backend's processor's own view of the job table, reproduced (issue 22).

The processor asks for work with ONE Scan whose FilterExpression is `status = pending`,
without a projection, and never follows LastEvaluatedKey. DynamoDB filters after reading
a page of up to 1 MB, so once finished jobs fill that first page, pending jobs beyond it are
never processed. The audit sends exactly that request once, then counts, during its own
full scan, the pending jobs that page did not return.
"""

from __future__ import annotations

from ansible.module_utils.panzoto.audit.tally import ProcessorPage

# What the backend sends (boto3's Attr("status").eq("pending")): status is a reserved word.
PROCESSOR_SCAN = {
    "FilterExpression": "#status = :pending",
    "ExpressionAttributeNames": {"#status": "status"},
    "ExpressionAttributeValues": {":pending": {"S": "pending"}},
}


def read_processor_page(client, table: str) -> ProcessorPage:
    """The first (and only) page the processor reads: one request, LastEvaluatedKey reported, never followed."""
    page = client.scan(TableName=table, **PROCESSOR_SCAN)
    visible = frozenset(
        item["job_id"]["S"]
        for item in page.get("Items", [])
        if isinstance(item.get("job_id"), dict) and "S" in item["job_id"]
    )
    return ProcessorPage(
        visible_ids=visible,
        scanned_count=page.get("ScannedCount", 0),
        more_pages="LastEvaluatedKey" in page,
    )
