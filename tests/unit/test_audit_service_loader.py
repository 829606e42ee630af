"""panzoto.aws's ServiceLoader: botocore's models and errors, without listing every service per client."""

from __future__ import annotations

import json

import boto3
import botocore.exceptions
import botocore.loaders
import pytest
from ansible.module_utils.panzoto import aws


class Module:
    def __init__(self, **params: object) -> None:
        self.params = {"region": "us-east-1", "access_key": "k", "secret_key": "s", "max_attempts": 5, **params}

    def fail_json(self, msg: str, **_: object) -> None:
        raise AssertionError(msg)


def test_the_audits_session_loads_models_through_the_service_loader() -> None:
    session = aws.aws_session(Module())
    assert type(session._session.get_component("data_loader")) is aws.ServiceLoader
    assert session._loader is session._session.get_component("data_loader")
    plain = boto3.session.Session(region_name="us-east-1")
    # The same search paths as botocore's own loader (boto3's data directory included).
    assert session._loader.search_paths == plain._loader.search_paths


@pytest.mark.parametrize("service", ["dynamodb", "cloudwatch", "s3", "sts"])
@pytest.mark.parametrize("type_name", ["service-2", "endpoint-rule-set-1", "paginators-1"])
def test_models_are_botocores_without_the_full_listing(monkeypatch, service: str, type_name: str) -> None:
    loader = aws.ServiceLoader()
    listed = []
    monkeypatch.setattr(
        botocore.loaders.Loader,
        "list_available_services",
        lambda self, type_name: listed.append(type_name) or pytest.fail("listed every service"),
    )
    model = loader.load_service_model(service, type_name)
    assert not listed
    monkeypatch.undo()
    expected = botocore.loaders.Loader().load_service_model(service, type_name)
    assert json.dumps(model, sort_keys=True, default=str) == json.dumps(expected, sort_keys=True, default=str)


def test_an_unknown_service_or_type_raises_botocores_own_errors() -> None:
    for service, type_name in (("no-such-service", "service-2"), ("dynamodb", "no-such-type-1")):
        with pytest.raises(botocore.exceptions.UnknownServiceError) as ours:
            aws.ServiceLoader().load_service_model(service, type_name)
        with pytest.raises(botocore.exceptions.UnknownServiceError) as theirs:
            botocore.loaders.Loader().load_service_model(service, type_name)
        assert str(ours.value) == str(theirs.value)


def test_listing_services_outside_a_model_load_is_the_full_list() -> None:
    ours, theirs = aws.ServiceLoader(), botocore.loaders.Loader()
    assert ours.list_available_services("service-2") == theirs.list_available_services("service-2")
    ours.load_service_model("dynamodb", "service-2")
    assert ours.list_available_services("service-2") == theirs.list_available_services("service-2")


def test_a_client_made_by_aws_client_works_as_botocores() -> None:
    client = aws.aws_client(Module(), "dynamodb")
    plain = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1").client(
        "dynamodb"
    )
    assert client.meta.service_model.operation_names == plain.meta.service_model.operation_names
    assert client.meta.endpoint_url == plain.meta.endpoint_url
    assert client.can_paginate("scan") and client.get_paginator("scan") is not None
