"""`hpsearch.Client`: a hpsearch server from Python, and the HTTP side of the `hpsearch` CLI.

Imports nothing else of hpsearch (nor FastAPI, SQLAlchemy or NumPy): it knows the server only
by its HTTP API::

    from hpsearch import Client

    with Client() as client:  # HPSEARCH_URL / HPSEARCH_TOKEN, else the saved `hpsearch login`
        study = client.create_study("examples/quickstart.yaml")
        client.wait(study, progress=True)
        print(client.best(study)["config"])

Every failure raises `ApiError` (`Unreachable` is one), with its HTTP status, code, field and
message.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import quote

import httpx
import yaml

if TYPE_CHECKING:  # pandas is optional: imported only by `trials_frame`
    import pandas

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 30.0
# Waits before each retry of a request that did not get through (or was rate limited).
RETRY_DELAYS_S = (0.25, 1.0, 2.0)
MAX_WAIT_S = 10.0  # the longest Retry-After honoured
# How long `wait` waits between tries when the server stopped answering (a restart, a blip).
OUTAGE_RETRY_S = 2.0
TRIALS_PAGE = 200  # the API's default page; it allows up to 1000
METRICS_PAGE = 5000  # reports per page; the API allows up to 10,000
_REF = re.compile(r"^(?P<team>[^/@\s]+)/(?P<name>[^/@\s]+)(?:@(?P<version>latest|[1-9][0-9]*))?$")


class ApiError(Exception):
    """Any failure of the client: an error answer, no answer, no token, a bad reference.

    `status` is the HTTP status (None when the server never answered), `code` the API's error
    code, `field` the part of the request it is about (or None), `message` a sentence.
    """

    def __init__(
        self, status: int | None, code: str, message: str, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        # The CLI's exit code: 2 for the caller's mistake, 1 for the server's or the network's.
        self.exit_code = 1 if status is not None and status >= 500 else 2

    def __repr__(self) -> str:
        return f"ApiError(status={self.status}, code={self.code!r}, field={self.field!r})"


class Unreachable(ApiError):
    """No answer from the server; `retry` says whether sending the request again is safe."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(None, "unreachable", message)
        self.exit_code = 1
        self.retry = retry


def _local_error(message: str, code: str = "client_error") -> ApiError:
    """A failure found here, before or without the server."""
    return ApiError(None, code, message)


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
        raise ApiError(
            None,
            "invalid",
            f"preset {ref!r}: expected team/name@version or team/name@latest",
            "ref",
        )
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
        raise _local_error(f"cannot read {path}: {exc}") from None
    if not isinstance(saved, dict):
        raise _local_error(f"cannot read {path}: expected an object with url and token")
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


StudyRef = int | Mapping[str, Any]
"""A study: its id, or the study as a method of `Client` returned it."""


def _study_id(study: StudyRef) -> int:
    return study if isinstance(study, int) else int(study["id"])


def best_text(study: Mapping[str, Any]) -> str:
    """The best trial of a study in a few words: "val_accuracy 0.9667 (#12)"; empty if none."""
    best = study["best_trial"]
    if best is None or best["value"] is None:
        return ""
    metric = study["objectives"][0]["metric"]
    return f"{metric} {best['value']:.4g} (#{best['number']})"


class Client:
    """A hpsearch server: studies, their trials, datasets and presets.

    Requests that never reached the server, and those safe to repeat (GETs, and POSTs carrying
    an Idempotency-Key), are retried a few times. Use it as a context manager, or `close()` it.
    """

    def __init__(
        self,
        url: str | Target | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Connect to `url` with `token`; each missing one is taken from HPSEARCH_URL /
        HPSEARCH_TOKEN, else from the login `hpsearch login` saved. `transport` replaces the
        network (e.g. to lose answers on purpose). Raises `ApiError` when no token is found."""
        if isinstance(url, Target):
            target = url
        else:
            env = os.environ
            target = resolve(url or env.get("HPSEARCH_URL"), token or env.get("HPSEARCH_TOKEN"))
        if not target.token:
            raise ApiError(
                None,
                "no_token",
                "no token: pass one (--token, or token= in Python), set HPSEARCH_TOKEN, or run"
                " hpsearch login first",
                "token",
            )
        self.url = target.url
        self._http = httpx.Client(
            base_url=target.url,
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=TIMEOUT_S,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections to the server."""
        self._http.close()

    def me(self) -> dict[str, Any]:
        """The user the token acts for, with their teams."""
        return self._json("GET", "/api/v1/me")

    # Studies

    def create_study(
        self,
        study: Mapping[str, Any] | str | Path,
        *,
        team: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a study (a study file's path, or its document) and return it, running.

        `team` is needed only by a member of several teams. A retry after a lost answer sends
        the same `idempotency_key` (one is made per call) and gets the study it made.
        """
        document = _study_document(study) if isinstance(study, str | Path) else dict(study)
        return self._json(
            "POST",
            "/api/v1/studies",
            json=document,
            params={"team": team} if team else None,
            headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
        )

    def studies(
        self,
        *,
        team: str | None = None,
        status: str | None = None,
        name: str | None = None,
        tag: str | None = None,
    ) -> list[dict[str, Any]]:
        """Your teams' studies, newest first: id, name, team, status, progress, best value.
        `name` matches part of the name; `status` is running, complete, cancelled, ..."""
        chosen = {"team": team, "status": status, "name": name, "tag": tag}
        params: dict[str, Any] = {k: v for k, v in chosen.items() if v is not None}
        found: list[dict[str, Any]] = []
        while True:
            page = self._json(
                "GET", "/api/v1/studies", params=params | {"limit": 200, "offset": len(found)}
            )
            found += page["data"]
            if not page["data"] or len(found) >= page["count"]:
                return found

    def get_study(self, study: StudyRef) -> dict[str, Any]:
        """A study now: status, trials by state, best trial, time left."""
        fresh, _ = self._study_since(_study_id(study), None)
        assert fresh is not None  # asked without an ETag: the answer has a body
        return fresh

    def cancel_study(self, study: StudyRef) -> dict[str, Any]:
        """Stop queueing a running study's trials; running ones stop at their next report."""
        return self._json("POST", f"/api/v1/studies/{_study_id(study)}/cancel")

    def resume_study(self, study: StudyRef) -> dict[str, Any]:
        """Run a cancelled or timed-out study on to its budget."""
        return self._json("POST", f"/api/v1/studies/{_study_id(study)}/resume")

    def delete_study(self, study: StudyRef) -> None:
        """Delete a study with its trials and curves."""
        self._request("DELETE", f"/api/v1/studies/{_study_id(study)}")

    def wait(
        self, study: StudyRef, *, progress: bool = False, interval_s: float = 1.0
    ) -> dict[str, Any]:
        """Wait until the study is no longer running and return it; `progress` draws a bar on
        stderr. A server that goes away after answering (a restart) is waited out."""
        states = self._follow(_study_id(study), interval_s)
        if not progress:
            *_, last = states
            return last
        from rich.console import Console  # only a progress bar needs rich
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        last = next(states)
        columns = (
            TextColumn("[bold]{task.description}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("best {task.fields[best]}"),
        )
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(
                escape(last["name"]),
                total=last["budget_trials"],
                completed=last["trials_finished"],
                best=best_text(last),
            )
            for last in states:
                bar.update(task, completed=last["trials_finished"], best=best_text(last))
        return last

    def definition(self, study: StudyRef) -> dict[str, Any]:
        """A study's study file as the server stored it."""
        return self._json("GET", f"/api/v1/studies/{_study_id(study)}/definition")

    # Trials

    def trials(self, study: StudyRef, *, page: int = TRIALS_PAGE) -> list[dict[str, Any]]:
        """Every trial of a study in the order they were queued (fetched `page` at a time):
        number, state, reason, value, values, params, times."""
        return list(self._paged(f"/api/v1/studies/{_study_id(study)}/trials", page))

    def trial(self, study: StudyRef, number: int) -> dict[str, Any]:
        """One trial with the full config it trained with and its learning curve."""
        return self._json("GET", f"/api/v1/studies/{_study_id(study)}/trials/{number}")

    def best(self, study: StudyRef) -> dict[str, Any] | None:
        """The best trial so far (by the first objective) with its full runnable `config`;
        None while no trial has completed."""
        best = self.get_study(study)["best_trial"]
        return None if best is None else self.trial(study, best["number"])

    def export_trials(self, study: StudyRef, format: Literal["csv", "json"] = "csv") -> str:
        """A study's trials as a flat table, one row a trial: number, state, reason, value,
        `values.<metric>`, `params.<path>`, started_at, finished_at."""
        path = f"/api/v1/studies/{_study_id(study)}/trials/export"
        return self._request("GET", path, params={"format": format}).text

    def weights(self, study: StudyRef, number: int) -> bytes:
        """A complete trial's trained model as stored (for the built-in engine, an NPZ file of
        `param/<name>` and `buffer/<name>` arrays and the config in `meta`)."""
        path = f"/api/v1/studies/{_study_id(study)}/trials/{number}/weights"
        return self._request("GET", path).content

    def trials_frame(self, study: StudyRef) -> pandas.DataFrame:
        """`export_trials` as a pandas DataFrame (pandas is not a dependency: install it)."""
        try:
            import pandas
        except ImportError:
            raise _local_error("trials_frame needs pandas: pip install pandas") from None
        return pandas.DataFrame(json.loads(self.export_trials(study, "json")))

    def metrics(self, study: StudyRef, *, page: int = METRICS_PAGE) -> Iterator[dict[str, Any]]:
        """Every per-step report of every trial of a study, fetched `page` at a time."""
        return self._paged(f"/api/v1/studies/{_study_id(study)}/metrics", page)

    # Datasets

    def upload_dataset(
        self,
        path: str | Path,
        *,
        target: str | None = None,
        name: str | None = None,
        team: str | None = None,
    ) -> dict[str, Any]:
        """Upload a .csv (with a header row; `target` names the column to predict) or .npz
        as the next version of `name` (default: the file's stem); the same bytes as the
        name's latest version give that version. Study files name it `dataset: {upload:
        name}` (the latest version when submitted) or `{upload: "name@2"}`: its `ref`."""
        path = Path(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ApiError(None, "invalid", f"cannot read {path}: {exc}", "file") from None
        fields = {"target": target, "name": name, "team": team}
        return self._json(
            "POST",
            "/api/v1/datasets",
            files={"file": (path.name, content)},
            data={k: v for k, v in fields.items() if v is not None},
        )

    def datasets(self) -> list[dict[str, Any]]:
        """Your teams' uploaded datasets."""
        return self._json("GET", "/api/v1/datasets")

    def delete_dataset(self, dataset_id: int) -> None:
        """Delete an uploaded dataset."""
        self._request("DELETE", f"/api/v1/datasets/{dataset_id}")

    # Presets

    def publish_preset(
        self,
        study: StudyRef,
        trial_number: int,
        name: str,
        visibility: Literal["team", "public"] = "team",
    ) -> dict[str, Any]:
        """Publish a complete trial's config as the next version of its team's preset `name`."""
        body = {
            "study_id": _study_id(study),
            "trial_number": trial_number,
            "name": name,
            "visibility": visibility,
        }
        return self._json("POST", "/api/v1/presets", json=body)

    def presets(self) -> list[dict[str, Any]]:
        """Every version of your teams' presets and of public ones."""
        return self._json("GET", "/api/v1/presets")["data"]

    def preset(self, ref: str | PresetRef) -> dict[str, Any]:
        """One version of a preset ("team/name@3", "team/name@latest" or "team/name"), with
        its config, the metrics its trial reached and its provenance."""
        return self._json("GET", _preset_ref(ref).path)

    def export_preset(self, ref: str | PresetRef, format: Literal["yaml", "json"] = "yaml") -> str:
        """A preset as a study file that `hpsearch run` (or `create_study`) runs as is: one
        trial of its config."""
        return self._request(
            "GET", f"{_preset_ref(ref).path}/export", params={"format": format}
        ).text

    def preset_weights(self, ref: str | PresetRef) -> bytes:
        """The trained model a preset carries (see `weights`)."""
        return self._request("GET", f"{_preset_ref(ref).path}/weights").content

    def _study_since(self, study_id: int, etag: str | None) -> tuple[dict[str, Any] | None, str]:
        """A study and its ETag; None for the study when it has not changed since `etag`."""
        headers = {"If-None-Match": etag} if etag else None
        response = self._request("GET", f"/api/v1/studies/{study_id}", headers=headers)
        fresh = None if response.status_code == 304 else self._decoded(response)
        return fresh, response.headers.get("etag", etag or "")

    def _follow(self, study_id: int, interval_s: float) -> Iterator[dict[str, Any]]:
        """The study now, then each time it changes, until it is no longer running.

        Once the server has answered, it going away (restarted, redeployed, a network blip) or
        answering 503 (its database is away) is waited out with a message, not an error: the
        study runs on in the workers, and a wait that died with the API would lie.
        """
        study: dict[str, Any] | None = None
        etag: str | None = None
        while study is None or study["status"] == "running":
            if study is not None:
                time.sleep(interval_s)
            try:
                fresh, etag = self._study_since(study_id, etag)
            except ApiError as exc:
                if study is None or not (isinstance(exc, Unreachable) or exc.status == 503):
                    raise  # never reached it (a wrong URL, a server not started), or real
                print(f"{exc}; retrying in {OUTAGE_RETRY_S:g} s", file=sys.stderr)
                time.sleep(OUTAGE_RETRY_S)
                continue
            if fresh is not None:
                study = fresh
                yield study

    def _paged(self, path: str, page: int) -> Iterator[dict[str, Any]]:
        """Every item of a listing paged by `after` cursor, `page` at a time."""
        params: dict[str, int] = {"limit": page}  # no `after` at first: each listing's start
        while True:
            answer = self._json("GET", path, params=params)
            yield from answer["data"]
            if len(answer["data"]) < page:
                return
            params["after"] = answer["next_cursor"]

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._decoded(self._request(method, path, **kwargs))

    def _decoded(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                "not_hpsearch",
                f"{self.url} answered {response.request.url.path} without JSON:"
                " is it an hpsearch server?",
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

    # The agent's side of a study (`hpsearch.agent`): offer its trainer, lease a trial, report,
    # finish.

    def offer(
        self, study_id: int, agent: str, host: str, trainer: dict[str, Any]
    ) -> dict[str, Any]:
        """Tell the server that `agent` (on `host`) runs `trainer` (name, and version,
        config_schema, step_metrics, final_metrics when it declares them) for the study's team;
        the answer says how often to offer again (`heartbeat_s`)."""
        body = {"agent": agent, "host": host, "trainer": trainer}
        return self._json("POST", f"/api/v1/studies/{study_id}/offer", json=body)

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

    def release(self, study_id: int, number: int, agent: str) -> None:
        """Give `agent`'s leased trial back unfinished: it is queued again at once."""
        path = f"/api/v1/studies/{study_id}/trials/{number}/release"
        self._request("POST", path, json={"agent": agent})

    def trial_dataset(
        self, study_id: int, number: int, agent: str, ref: str
    ) -> tuple[int, str, bytes]:
        """An upload of the study's team as `agent`'s leased trial reads it (`ref`: an id,
        `name` or `name@version`): its id, its format (`csv` or `npz`) and its bytes as
        uploaded. `ApiError` 404 for any other dataset."""
        path = f"/api/v1/studies/{study_id}/trials/{number}/datasets/{quote(ref, safe='@')}"
        response = self._request("GET", path, params={"agent": agent})
        headers = response.headers
        return int(headers["x-dataset-id"]), headers["x-dataset-format"], response.content

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


def _preset_ref(ref: str | PresetRef) -> PresetRef:
    return ref if isinstance(ref, PresetRef) else parse_ref(ref)


def _study_document(path: str | Path) -> Any:
    """A study file's document (YAML or JSON), checked by the server, not here: the client
    imports none of the server's code."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ApiError(None, "invalid", f"cannot read {path}: {exc}", "study") from None
