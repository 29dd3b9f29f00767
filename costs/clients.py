"""The one place that builds cloud clients, so tests point them at local servers.

Credentials are never stored: an account names a profile, a role to assume, or where a
service-account key lives, and the SDKs read the secret themselves.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config
from django.conf import settings

from costs.models import CloudAccount


def _aws_config() -> Config:
    # Standard mode retries throttling and 5xx with exponential backoff and jitter.
    return Config(
        # total_max_attempts counts the first try too, as the setting's name says.
        retries={"mode": "standard", "total_max_attempts": settings.CAPGOV_AWS_MAX_ATTEMPTS},
        connect_timeout=10,
        read_timeout=60,
    )


def aws_session(account: CloudAccount) -> boto3.Session:
    """A session for the account: its profile, then the role it assumes, if any."""
    session = boto3.Session(
        profile_name=account.aws_profile or None, region_name=account.aws_region or None
    )
    if not account.aws_role_arn:
        return session
    sts = session.client("sts", config=_aws_config(), **_aws_endpoint("sts"))
    credentials = sts.assume_role(
        RoleArn=account.aws_role_arn, RoleSessionName=f"capgov-{account.pk}"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=account.aws_region or None,
    )


def _aws_endpoint(service: str) -> dict[str, Any]:
    """Tests (moto's server) and private endpoints: CAPGOV_AWS_ENDPOINT_URL[_<SERVICE>]."""
    url = settings.CAPGOV_AWS_ENDPOINT_URLS.get(service) or settings.CAPGOV_AWS_ENDPOINT_URL
    return {"endpoint_url": url} if url else {}


def aws_client(account: CloudAccount, service: str, *, region: str | None = None):
    session = aws_session(account)
    return session.client(
        service,
        region_name=region or account.aws_region or None,
        config=_aws_config(),
        **_aws_endpoint(service),
    )


def gcp_credentials(account: CloudAccount):
    """Credentials from the key file the account points at, else application defaults.

    With ``CAPGOV_GCP_API_ENDPOINT`` set (tests, emulators) the clients talk to that server
    with anonymous credentials.
    """
    if settings.CAPGOV_GCP_API_ENDPOINT:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    reference = account.gcp_credentials.strip()
    if not reference:
        import google.auth

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        return credentials
    if reference.startswith("env:"):
        name = reference[4:]
        path = os.environ.get(name, "")
        # Never echo the variable's value: it could be any secret of the worker's.
        if not path:
            raise FileNotFoundError(f"${name} is not set on the worker")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"the key file named by ${name} does not exist or cannot be read"
            ) from None
    else:
        path = reference
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_file(
        path, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )


def _gcp_options(override: str) -> dict[str, Any]:
    endpoint = override or settings.CAPGOV_GCP_API_ENDPOINT
    return {"client_options": {"api_endpoint": endpoint}} if endpoint else {}


def gcp_catalog_client(account: CloudAccount):
    from google.cloud import billing_v1

    return billing_v1.CloudCatalogClient(
        transport="rest", credentials=gcp_credentials(account), **_gcp_options("")
    )


def gcp_billing_client(account: CloudAccount):
    from google.cloud import billing_v1

    return billing_v1.CloudBillingClient(
        transport="rest", credentials=gcp_credentials(account), **_gcp_options("")
    )


def gcp_bigquery_client(account: CloudAccount):
    from google.cloud import bigquery

    return bigquery.Client(
        project=account.gcp_project or None,
        credentials=gcp_credentials(account),
        **_gcp_options(settings.CAPGOV_BIGQUERY_API_ENDPOINT),
    )


def gcp_authorized_session(account: CloudAccount):
    """A ``requests`` session that signs each call with the account's credentials, for the
    Google REST APIs that have no client library here (Vertex AI)."""
    from google.auth.transport.requests import AuthorizedSession

    return AuthorizedSession(gcp_credentials(account))
