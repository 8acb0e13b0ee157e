"""The add-stock form and the logo upload, fuzzed through the in-process frontend.

The frontend publishes no OpenAPI schema, so hypothesis draws what a browser (or anything
else) could send: symbols and names from every corner of Unicode, upload ids, files that are
images or are not, extra and repeated fields, any Origin header, with a valid CSRF token (a
refusal for a missing token is tested in test_security.py). Whatever arrives: never a 5xx;
every refusal a 4xx page saying what is wrong; and every valid form creates its stock.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from stockday.domain.stocks import InvalidStock, normalize_name, normalize_symbol
from stockday.frontend import security
from stockday.runtime.settings import Settings
from tests.frontend.site import Site, form_fields, running_site
from tests.support import images

# Bounded so the suite stays quick: about 45 s on the shared 2-core machine (docs/testing.md).
FUZZ = examples(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ERROR_MARKERS = ('class="field-error"', 'class="form-error"', 'class="card error-card"')

VALID_SYMBOLS = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,9}([.-][A-Za-z0-9]{1,4})?", fullmatch=True)
# Surrogates aside: a browser cannot send one (it has no UTF-8 form).
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
TRICKY_CHARACTERS = st.sampled_from(
    ["\u202e", "\u200b", "\u200d", "\x7f", "\x00", "\n", "\u2028", "\u00df", "\u0131", "\uff21"]
)
SYMBOLS = st.one_of(
    VALID_SYMBOLS,
    ANY_TEXT,
    st.builds(
        lambda s, c, i: s[:i] + c + s[i:], VALID_SYMBOLS, TRICKY_CHARACTERS, st.integers(0, 9)
    ),
)
NAMES = st.one_of(
    st.text(
        st.characters(codec="utf-8", exclude_categories=["Cc", "Cf", "Zl", "Zp"]), max_size=130
    ),
    ANY_TEXT,
    st.builds(lambda n, c: f"Acme{c}{n}", ANY_TEXT, TRICKY_CHARACTERS),
    st.sampled_from(["Société Générale", "トヨタ自動車", "Coca-Cola 🥤", "<script>x</script>"]),
)
UPLOAD_IDS = st.one_of(st.just(""), st.from_regex(r"[0-9a-f]{32}", fullmatch=True), ANY_TEXT)
FILES = st.one_of(
    st.none(),
    st.binary(max_size=2048).map(lambda data: ("logo.bin", data, "application/octet-stream")),
    st.builds(images.png, st.integers(1, 48), st.integers(1, 48)).map(
        lambda data: ("logo.png", data, "image/png")
    ),
)
# What a browser or anything else may say the form came from (header values are Latin-1).
ORIGINS = st.one_of(
    st.none(),
    st.sampled_from(["http://frontend", "https://frontend", "http://frontend:8000", "null"]),
    st.sampled_from(["http://[::1", "http://frontend:99999", "http://evil.example"]),
    st.text(st.characters(codec="latin-1", categories=["L", "N", "P", "S", "Zs"]), max_size=30),
)
EXTRA_FIELDS = st.dictionaries(
    st.sampled_from(["symbol", "name", "x", "upload_id", "file"]), ANY_TEXT, max_size=2
)


def _valid(rule: Callable[[str], str], value: str) -> bool:
    try:
        rule(value)
    except InvalidStock:
        return False
    return True


def _as_read(fields: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The form's fields as the frontend reads them: a repeated field's last value, trimmed
    where the form trims (symbol and upload id)."""
    read = {key: extra.get(key, value) for key, value in fields.items()}
    return read | {"symbol": read["symbol"].strip(), "upload_id": read["upload_id"].strip()}


@contextmanager
def in_process_site(settings: Settings) -> Iterator[tuple[BlockingPortal, Site]]:
    """The three services in-process on one event loop, callable from a synchronous test."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_site(settings)) as site,
    ):
        yield portal, site


def _same_origin(origin: str | None) -> bool:
    """Whether ``origin`` is the site's (the exact rules are tested in test_security.py)."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    site = security.parse_origin(parts.scheme, parts.netloc)
    return not (parts.path or parts.query) and site == ("http", "frontend", 80)


async def _submit(
    site: Site, fields: dict[str, str], extra: dict[str, str], file: Any, origin: str | None
) -> httpx.Response:
    hidden = await form_fields(site.browser)
    data: dict[str, Any] = {**hidden, **fields}
    for key, value in extra.items():  # a repeated field arrives as a list of values
        data[key] = [data[key], value] if key in data else value
    files = {"file": file} if file is not None else None
    # Bytes: a header may carry any Latin-1 text, which httpx sends only as bytes.
    headers = {"Origin": origin.encode("latin-1")} if origin is not None else None
    return await site.browser.post(
        "/stocks", data=data, files=files, headers=headers, follow_redirects=False
    )


def _assert_refused_clearly(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.status_code
    assert response.headers["content-type"].startswith("text/html")
    assert any(marker in response.text for marker in ERROR_MARKERS), response.text[:500]


@pytest.fixture
def fuzzed_site(tmp_path: Path) -> Iterator[tuple[BlockingPortal, Site]]:
    # One client sends every case: no per-client limit may answer in the form's place (the
    # limits are tested in tests/frontend/test_rate_limits.py).
    unlimited = Settings(
        data_dir=tmp_path,
        rate_limit_pages="",
        rate_limit_creates="",
        rate_limit_uploads="",
        upload_bytes_per_hour=0,
    )
    with in_process_site(unlimited) as running:
        yield running


def test_the_add_stock_form_answers_every_input_clearly(
    fuzzed_site: tuple[BlockingPortal, Site],
) -> None:
    portal, site = fuzzed_site

    @FUZZ
    @given(
        symbol=SYMBOLS,
        name=NAMES,
        upload_id=UPLOAD_IDS,
        file=FILES,
        extra=EXTRA_FIELDS,
        origin=ORIGINS,
    )
    def submit(
        symbol: str, name: str, upload_id: str, file: Any, extra: dict[str, str], origin: str | None
    ) -> None:
        fields = {"symbol": symbol, "name": name, "upload_id": upload_id}
        response = portal.call(_submit, site, fields, extra, file, origin)
        assert response.status_code < 500, response.text[:500]
        sent = _as_read(fields, extra)
        valid = (
            _same_origin(origin)
            and _valid(normalize_symbol, sent["symbol"])
            and _valid(normalize_name, sent["name"])
            and sent["upload_id"] == ""
            and (file is None or file[0] == "logo.png" or not file[1])
        )
        if response.status_code == 303:
            assert valid, fields
            created = normalize_symbol(sent["symbol"])
            assert response.headers["location"] == f"/stocks/{created}"
            return
        _assert_refused_clearly(response)
        if valid:  # only a symbol already added may turn a valid form away
            assert response.status_code == 409, response.text[:500]
        elif not _same_origin(origin) and response.status_code == 403:
            assert "did not come from this site" in response.text
        else:
            _assert_names_the_problem(response, sent)

    submit()


def _assert_names_the_problem(response: httpx.Response, fields: dict[str, str]) -> None:
    """A refused form says which field is wrong, and never shows another symbol's stock."""
    page = html.unescape(response.text)
    if not _valid(normalize_symbol, fields["symbol"]):
        assert re.search(r'id="symbol-error"|class="form-error"|error-card', page)
    elif not _valid(normalize_name, fields["name"]):
        assert re.search(r'id="name-error"|class="form-error"|error-card', page)


def test_uploads_answer_every_file_clearly(fuzzed_site: tuple[BlockingPortal, Site]) -> None:
    portal, site = fuzzed_site

    async def upload(file: Any) -> httpx.Response:
        token = (await form_fields(site.browser))["csrf_token"]
        return await site.browser.post(
            "/uploads", files={"file": file}, headers={"X-CSRF-Token": token}
        )

    @FUZZ
    @given(file=FILES.filter(lambda f: f is not None))
    def send(file: Any) -> None:
        response = portal.call(upload, file)
        assert response.status_code < 500, response.text
        if file[0] == "logo.png":
            assert response.status_code == 201, response.text
            assert re.fullmatch(r"[0-9a-f]{32}", response.json()["upload_id"])
        else:
            assert response.status_code in (415, 422), response.text
            assert response.json()["detail"]

    send()
