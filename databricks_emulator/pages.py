"""Paged list answers (`jobs/list`, `jobs/runs/list`): `limit` with `page_token` or `offset`."""

from .errors import bad_request

_TOKEN = "emulator-offset-"


def paged(items: list, query: dict, key: str, max_limit: int) -> dict:
    """The page of `items` that `query` asks for, under `key`, with Databricks' paging fields."""
    limit = _int(query.get("limit", "20"), "limit")
    if not 1 <= limit <= max_limit:
        raise bad_request(f"limit must be between 1 and {max_limit}.")
    token = query.get("page_token")
    offset = _offset(token) if token else _int(query.get("offset", "0"), "offset")
    page = items[offset:offset + limit]
    body = {"has_more": offset + limit < len(items)}
    if page:
        body[key] = page
    if body["has_more"]:
        body["next_page_token"] = f"{_TOKEN}{offset + limit}"
    if offset > 0:
        body["prev_page_token"] = f"{_TOKEN}{max(0, offset - limit)}"
    return body


def _int(raw, what: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"Invalid {what}: {raw!r}")


def _offset(token: str) -> int:
    if not token.startswith(_TOKEN):
        raise bad_request(f"Invalid page_token: {token!r}")
    return _int(token[len(_TOKEN):], "page_token")
