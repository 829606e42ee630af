"""AWS error classification: one set of not-found codes, one line per error."""

from __future__ import annotations

import botocore.exceptions
import pytest
from ansible.module_utils.panzoto.aws import (
    NOT_FOUND_CODES,
    describe_aws_error,
    error_code,
    error_summary,
    is_error_code,
    is_not_found,
)
from cleanup_fixtures import client_error


@pytest.mark.parametrize("code", sorted(NOT_FOUND_CODES))
def test_every_not_found_code_is_recognised(code):
    assert is_not_found(client_error(code)) and error_code(client_error(code)) == code


def test_codes_are_matched_exactly_and_other_exceptions_have_none():
    assert is_error_code(client_error("SlowDown"), "SlowDown") and is_error_code(client_error("A"), ["B", "A"])
    assert not is_error_code(client_error("SlowDown"), "Slow") and not is_not_found(RuntimeError("404"))
    assert error_code(ValueError("x")) == ""


def test_a_missing_bucket_says_the_bucket_does_not_exist():
    line = describe_aws_error(client_error("NoSuchBucket"), "delete s3://panzoto/k")
    assert "the bucket does not exist" in line and "service health" not in line and "\n" not in line


@pytest.mark.parametrize(
    "exc",
    [
        client_error("ThrottlingException"),
        client_error("ResourceNotFoundException"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        botocore.exceptions.NoCredentialsError(),
        RuntimeError("first line\nsecond line"),
    ],
)
def test_every_error_is_described_in_one_line_saying_what_was_being_done(exc):
    line = describe_aws_error(exc, "scan table t", "http://127.0.0.1:1")
    assert "\n" not in line and "scan table t" in line
    assert "\n" not in error_summary(exc)


def test_the_summary_is_the_code_and_aws_message():
    assert error_summary(client_error("AccessDenied")) == "AccessDenied: AccessDenied message"
    assert error_summary(RuntimeError("boom\nmore")) == "RuntimeError: boom"


def test_a_client_error_names_the_region_and_endpoint_it_was_sent_to():
    line = describe_aws_error(
        client_error("ResourceNotFoundException"), "scan table t", "http://127.0.0.1:1", region="eu-west-9"
    )
    assert "while trying to scan table t at http://127.0.0.1:1 (region eu-west-9):" in line


def test_an_unparsed_xml_error_body_is_reduced_to_its_message():
    exc = botocore.exceptions.ClientError(
        {
            "Error": {
                "Code": "403",
                "Message": "<?xml version='1.0'?><ErrorResponse><Error><Code>AccessDenied</Code>"
                "<Message>User: arn:aws:iam::123456789012:user/a is not authorized to perform: dynamodb:Scan"
                "</Message></Error></ErrorResponse>",
            }
        },
        "Scan",
    )
    line = describe_aws_error(exc, "scan table t")
    assert "<" not in line and "is not authorized to perform: dynamodb:Scan" in line


def test_the_client_names_its_region_and_endpoint_even_from_the_defaults():
    import boto3

    client = boto3.client("dynamodb", region_name="ap-south-2", aws_access_key_id="a", aws_secret_access_key="b")
    line = describe_aws_error(client_error("ResourceNotFoundException"), "audit table t", client=client)
    assert "at https://dynamodb.ap-south-2.amazonaws.com (region ap-south-2):" in line
