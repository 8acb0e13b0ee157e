"""Per-service endpoints: with STOCKDAY_AWS_ENDPOINT_URL unset, botocore's AWS_ENDPOINT_URL_S3,
_DYNAMODB and _SQS send each service's calls to its own endpoint. Here S3 is s3rver and
DynamoDB and SQS are moto: provisioning, stock-symbol and the frontend all follow."""

from __future__ import annotations

import re
import uuid
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from stockday.aws.clients import AwsConfig, make_client
from stockday.aws.provision import provision
from stockday.contracts.messages import LogoRequested, decode
from stockday.frontend.views import image_origins
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from tests.support import images as sample_images
from tests.support.servers import S3RVER_KEY_PAIR, ServerProcess, shared_s3rver

pytestmark = pytest.mark.anyio


@pytest.fixture
def s3rver() -> ServerProcess:
    return shared_s3rver()


@pytest.fixture
def split_settings(
    aws_emulator: ServerProcess,
    s3rver: ServerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The aws backend with S3 on s3rver and DynamoDB and SQS on moto, each by its variable."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3rver.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", aws_emulator.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", aws_emulator.url)
    # s3rver checks signatures against its own account; moto takes any key.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3RVER_KEY_PAIR[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3RVER_KEY_PAIR[1])
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        backend="aws",
        data_dir=tmp_path,
        dynamodb_table=f"stocks-{suffix}",
        s3_bucket=f"objects-{suffix}",
        logo_jobs_queue=f"jobs-{suffix}",
        logo_events_queue=f"events-{suffix}",
        memcached_servers="127.0.0.1:1",
        s3_tolerate_unsupported_bucket_settings=True,  # s3rver lacks them
    )
    assert settings.aws_endpoint_url is None
    provision(settings, say=lambda _: None)
    return settings


def bucket_keys(server: ServerProcess, bucket: str) -> list[str]:
    config = AwsConfig(
        region="us-east-1", endpoint_url=server.url, emulator_credentials=S3RVER_KEY_PAIR
    )
    with closing(make_client("s3", config)) as client:
        return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def table_names(server: ServerProcess) -> list[str]:
    with closing(make_client("dynamodb", AwsConfig("us-east-1", server.url))) as client:
        return client.list_tables()["TableNames"]


async def test_each_service_goes_to_its_own_endpoint(
    split_settings: Settings, aws_emulator: ServerProcess, s3rver: ServerProcess
) -> None:
    settings = split_settings
    assert settings.dynamodb_table in table_names(aws_emulator)
    price = httpx.ASGITransport(app=create_price_app(settings))
    async with httpx.AsyncClient(transport=price, base_url="http://price") as prices:
        app = create_symbol_app(settings, price_client=prices)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://symbol") as api:
            png = sample_images.png(64, 64)
            uploaded = await api.post("/api/uploads", files={"file": ("a.png", png, "image/png")})
            assert uploaded.status_code == 201, uploaded.text
            upload_id = uploaded.json()["upload_id"]
            created = await api.post(
                "/api/stocks", json={"symbol": "SPLIT", "name": "Split", "upload_id": upload_id}
            )
            assert created.status_code == 201, created.text
            assert (await api.get("/api/stocks/SPLIT")).json()["name"] == "Split"
            await app.state.context.aclose()

    # The upload and the marker that a stock links it, both on s3rver.
    assert bucket_keys(s3rver, settings.s3_bucket) == [
        f"uploads/{upload_id}",
        f"uploads/{upload_id}.linked",
    ]
    jobs = composition.message_queue(settings, settings.logo_jobs_queue)
    store = composition.object_store(settings)
    try:
        [message] = await jobs.receive(wait_seconds=2)
        job = decode(message.body)
        assert isinstance(job, LogoRequested)
        assert job.upload_id == upload_id
        # Logo URLs are signed for s3rver, and the frontend lets pages show them.
        assert store.url_for("logos/SPLIT/a.webp").startswith(f"{s3rver.url}/")
        assert image_origins(settings) == (s3rver.url,)
    finally:
        await jobs.close()
        await store.close()


ENDPOINT_VARIABLES = [
    pytest.param({}, id="none"),
    pytest.param({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, id="global"),
    pytest.param({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4568"}, id="s3"),
    pytest.param({"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000"}, id="another-service"),
    pytest.param(
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_S3": "http://s3:4568"},
        id="s3-over-global",
    ),
    pytest.param(
        {
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4568",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
        },
        id="ignored",
    ),
]


@pytest.mark.parametrize("explicit", [None, "http://127.0.0.1:5000"], ids=["unset", "setting"])
@pytest.mark.parametrize("variables", ENDPOINT_VARIABLES)
def test_the_s3_endpoint_the_frontend_allows_is_the_one_botocore_uses(
    variables: dict[str, str],
    explicit: str | None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = Settings(backend="aws", data_dir=tmp_path, aws_endpoint_url=explicit)
    with closing(make_client("s3", composition.aws_config(settings))) as client:
        used = client.meta.endpoint_url
    expected = None if re.fullmatch(r"https://s3\.([a-z0-9-]+\.)?amazonaws\.com", used) else used
    assert composition.object_store_endpoint(settings) == expected
