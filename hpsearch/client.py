"""The HTTP side of the command-line client: where the server is, retries, the one error shape.

Imports nothing else of hpsearch: it knows the server only by its HTTP API::

    with Client(resolve(url=None, token=None)) as client:
        study, created = client.create_study(document, new_idempotency_key())
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 30.0
# Waits before each retry of a request that did not get through (or was rate limited).
RETRY_DELAYS_S = (0.25, 1.0, 2.0)
MAX_WAIT_S = 10.0  # the longest Retry-After honoured
TRIALS_PAGE = 200  # the API's default page; it allows up to 1000
METRICS_PAGE = 5000  # reports per page; the API allows up to 10,000
_REF = re.compile(r"^(?P<team>[^/@\s]+)/(?P<name>[^/@\s]+)(?:@(?P<version>latest|[1-9][0-9]*))?$")


class ClientError(Exception):
    """A failure to report in one line, and the exit code it ends the command with."""

    exit_code = 2


class ApiError(ClientError):
    """The server answered with an error: its message, code and the field it is about."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field
        self.exit_code = 2 if 400 <= status < 500 else 1


class Unreachable(ClientError):
    """No answer from the server; `retry` says whether sending the request again is safe."""

    exit_code = 1

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class Target:
    """The server to talk to and the token to show it."""

    url: str
    token: str | None


@dataclass(frozen=True)
class PresetRef:
    """team/name@version, the version a number or "latest"."""

    team: str
    name: str
    version: str

    @property
    def path(self) -> str:
        """The preset's path under the API, each part quoted."""
        parts = (quote(p, safe="") for p in (self.team, self.name, self.version))
        return "/api/v1/presets/" + "/".join(parts)

    def __str__(self) -> str:
        return f"{self.team}/{self.name}@{self.version}"


def parse_ref(ref: str) -> PresetRef:
    """A preset reference; without "@version" it means the latest."""
    match = _REF.match(ref.strip())
    if match is None:
        raise ClientError(f"preset {ref!r}: expected team/name@version or team/name@latest")
    return PresetRef(match["team"], match["name"], match["version"] or "latest")


def config_path() -> Path:
    """Where `hpsearch login` keeps the URL and token: $XDG_CONFIG_HOME or ~/.config."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "hpsearch" / "client.json"


def read_config() -> dict[str, str]:
    """The saved url and token; empty when nothing is saved."""
    path = config_path()
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from None
    if not isinstance(saved, dict):
        raise ClientError(f"cannot read {path}: expected an object with url and token")
    return {k: v for k, v in saved.items() if k in ("url", "token") and isinstance(v, str)}


def write_config(url: str, token: str) -> Path:
    """Save the url and token for later commands, readable by this user only."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        # os.open's mode applies to a new file only: tighten one that existed before.
        os.fchmod(file.fileno(), 0o600)
        json.dump({"url": url, "token": token}, file, indent=2)
    return path


def resolve(url: str | None, token: str | None) -> Target:
    """The server: `url`/`token` (flags or environment, already merged by the caller), else
    the saved config, else the local default URL."""
    saved = read_config() if url is None or token is None else {}
    chosen = url or saved.get("url") or DEFAULT_URL
    return Target(url=chosen.rstrip("/"), token=token or saved.get("token"))


def new_idempotency_key() -> str:
    """A key for one submission, made once per command and sent again on each retry of it.

    Random rather than derived from the file: submitting the same file again on purpose is a
    new study, while a retry of a request whose answer was lost must not make a second one.
    """
    return f"cli-{uuid.uuid4().hex}"


class Client:
    """A session with one server. Requests that never reached it, and those safe to repeat
    (GETs, and POSTs carrying an Idempotency-Key), are retried a few times."""

    def __init__(self, target: Target, transport: httpx.BaseTransport | None = None) -> None:
        """`transport` replaces the network, e.g. to lose answers on purpose."""
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self.url = target.url
        self._http = httpx.Client(
            base_url=target.url, headers=headers, timeout=TIMEOUT_S, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def me(self) -> dict[str, Any]:
        """The user the token acts for, with their teams."""
        return self._json("GET", "/api/v1/me")

    def create_study(
        self, document: Any, idempotency_key: str, team: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """The study the document makes, and whether it is new (False: the key made it
        before, e.g. on a try whose answer was lost)."""
        response = self._request(
            "POST",
            "/api/v1/studies",
            json=document,
            params={"team": team} if team else None,
            headers={"Idempotency-Key": idempotency_key},
        )
        return self._decoded(response), response.status_code == 201

    def study(self, study_id: int, etag: str | None = None) -> tuple[dict[str, Any] | None, str]:
        """A study and its ETag; None for the study when it has not changed since `etag`."""
        headers = {"If-None-Match": etag} if etag else None
        response = self._request("GET", f"/api/v1/studies/{study_id}", headers=headers)
        fresh = None if response.status_code == 304 else self._decoded(response)
        return fresh, response.headers.get("etag", etag or "")

    def follow(self, study_id: int, interval_s: float) -> Iterator[dict[str, Any]]:
        """The study now, then each time it changes, until it is no longer running."""
        study, etag = self.study(study_id)
        assert study is not None  # no ETag was sent, so the answer has a body
        yield study
        while study["status"] == "running":
            time.sleep(interval_s)
            fresh, etag = self.study(study_id, etag)
            if fresh is not None:
                study = fresh
                yield study

    def trials(self, study_id: int, page: int = TRIALS_PAGE) -> Iterator[dict[str, Any]]:
        """Every trial of a study in insertion order, fetched `page` at a time."""
        return self._paged(f"/api/v1/studies/{study_id}/trials", page)

    def definition(self, study_id: int) -> dict[str, Any]:
        """A study's study file as the server stored it."""
        return self._json("GET", f"/api/v1/studies/{study_id}/definition")

    def metrics(self, study_id: int, page: int = METRICS_PAGE) -> Iterator[dict[str, Any]]:
        """Every per-step report of every trial of a study, fetched `page` at a time."""
        return self._paged(f"/api/v1/studies/{study_id}/metrics", page)

    def _paged(self, path: str, page: int) -> Iterator[dict[str, Any]]:
        """Every item of a listing paged by `after` cursor, `page` at a time."""
        cursor = 0
        while True:
            answer = self._json("GET", path, params={"after": cursor, "limit": page})
            yield from answer["data"]
            if len(answer["data"]) < page:
                return
            cursor = answer["next_cursor"]

    def presets(self) -> list[dict[str, Any]]:
        """Every version of the presets the caller may see."""
        return self._json("GET", "/api/v1/presets")["data"]

    def preset(self, ref: PresetRef) -> dict[str, Any]:
        """One version of a preset, with its config, values and provenance."""
        return self._json("GET", ref.path)

    def export_preset(self, ref: PresetRef, fmt: str) -> str:
        """A preset as the server writes it to a file: "yaml" or "json"."""
        return self._request("GET", f"{ref.path}/export", params={"format": fmt}).text

    def publish_preset(
        self, study_id: int, trial_number: int, name: str, visibility: str
    ) -> dict[str, Any]:
        """Publish a complete trial's config as the next version of its team's preset `name`."""
        body = {
            "study_id": study_id,
            "trial_number": trial_number,
            "name": name,
            "visibility": visibility,
        }
        return self._json("POST", "/api/v1/presets", json=body)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._decoded(self._request(method, path, **kwargs))

    def _decoded(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{self.url} answered {response.request.url.path} without JSON:"
                " is it an hpsearch server?"
            ) from None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; an error answer raises `ApiError`, no answer `Unreachable`."""
        request = self._http.build_request(method, path, **kwargs)
        # A request the server may have carried out can be sent again only when doing it twice
        # does what doing it once does.
        repeatable = method == "GET" or "idempotency-key" in request.headers
        for delay in RETRY_DELAYS_S:
            try:
                response = self._send_once(request, repeatable)
            except Unreachable as exc:
                if not exc.retry:
                    raise
                time.sleep(delay)
                continue
            # 429, or 503 (the server's database is away) to a request safe to send again:
            # the server says when to come back.
            if response.status_code != 429 and not (response.status_code == 503 and repeatable):
                return _checked(response)
            retry_after = response.headers.get("retry-after", "")
            time.sleep(min(float(retry_after) if retry_after.isdigit() else delay, MAX_WAIT_S))
        return _checked(self._send_once(request, repeatable))

    def _send_once(self, request: httpx.Request, repeatable: bool) -> httpx.Response:
        try:
            return self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Never reached the server: always safe to send again.
            raise Unreachable(f"cannot reach {self.url}: {exc}") from None
        except httpx.TransportError as exc:
            if repeatable:
                raise Unreachable(f"cannot reach {self.url}: no answer ({exc})") from None
            raise Unreachable(
                f"lost the connection to {self.url} before its answer ({exc}); the request"
                " may or may not have been carried out",
                retry=False,
            ) from None

    # The agent's side of a study (`hpsearch.agent`): lease a trial, report, finish.

    def lease(self, study_id: int, agent: str) -> dict[str, Any] | None:
        """Lease the study's next queued trial to `agent`: its number, params and full config;
        None when none is queued now. `ApiError` 409 once the study has ended."""
        body = {"agent": agent}
        response = self._request("POST", f"/api/v1/studies/{study_id}/lease", json=body)
        return None if response.status_code == 204 else self._decoded(response)

    def report(
        self, study_id: int, number: int, agent: str, reports: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Send a leased trial's steps (each {step, metrics}; none: a heartbeat) and renew its
        lease; the answer says whether to stop, and why."""
        body = {"agent": agent, "reports": reports}
        return self._json("POST", f"/api/v1/studies/{study_id}/trials/{number}/report", json=body)

    def finish(self, study_id: int, number: int, agent: str, end: dict[str, Any]) -> dict[str, Any]:
        """End a leased trial: `end` has its state, reason, values, traceback and the reports
        not sent yet; the trial as it was stored."""
        body = {"agent": agent, **end}
        return self._json("POST", f"/api/v1/studies/{study_id}/trials/{number}/finish", json=body)


def _checked(response: httpx.Response) -> httpx.Response:
    """The response, or `ApiError` with the message of the API's one error shape."""
    if response.status_code < 400:
        return response
    try:
        error = response.json()["error"]
        code, message, field = error["code"], error["message"], error.get("field")
    except (ValueError, KeyError, TypeError):
        # Not the API's shape: a proxy's page, or not an hpsearch server at all.
        lines = response.text.strip().splitlines()
        code, message, field = "http_error", f"HTTP {response.status_code}", None
        if lines:
            message += f": {lines[0][:200]}"
    raise ApiError(response.status_code, code, message, field)
