"""A small HTTP endpoint the queues' tools call back with ticket updates (``complaints tickets serve-updates``).

    POST /tickets/{ticket_id}/updates   {"status": "resolved", "resolution": "fixed", "by": "王芳", ...}
    GET  /tickets/{ticket_id}

Every request carries ``Authorization: Bearer <token>``; the token comes from the environment variable
named by ``Settings.ticket_api_token_env``, never from a file. Updates go through
``lifecycle.apply_updates`` like the command line's: 200 with the ticket's new state (or ``"unchanged"``
for a resent update), 404 for an unknown ticket, 409 for an illegal move, 400 for a bad field — and a
refused update changes nothing. Request bodies are never logged (staff notes quote customers).
"""
from __future__ import annotations

import hmac
import json
import os
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa

from pipeline.tickets import lifecycle, updates
from pipeline.config import ConfigError, Settings

MIN_TOKEN_CHARS = 16
MAX_BODY_BYTES = 64 * 1024
_UPDATE_PATH = re.compile(r"^/tickets/(?P<ticket_id>[^/]+)/updates/?$")
_TICKET_PATH = re.compile(r"^/tickets/(?P<ticket_id>[^/]+)/?$")
_STATUS_OF = {updates.UNKNOWN_TICKET: HTTPStatus.NOT_FOUND, updates.ILLEGAL_MOVE: HTTPStatus.CONFLICT,
              updates.INVALID: HTTPStatus.BAD_REQUEST}


def api_token(settings: Settings) -> str:
    """The bearer token from the environment; a clear error when it is missing or too short to be secret."""
    name = settings.ticket_api_token_env
    token = os.environ.get(name, "")
    if len(token) < MIN_TOKEN_CHARS:
        state = "is not set" if not token else f"holds only {len(token)} characters"
        raise ConfigError(f"environment variable {name} {state}: set it to a random secret of at least "
                          f"{MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`); the queues' tools send it as "
                          "'Authorization: Bearer …'")
    return token


class TicketUpdateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, engine: sa.Engine, settings: Settings, token: str, host: str = "127.0.0.1", port: int = 0):
        self.engine, self.settings, self.token = engine, settings, token.encode("utf-8")
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True, name="ticket-update-server")
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: TicketUpdateServer
    server_version = "complaint-tickets"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # the access line would hold the ticket id only, but a body never reaches any log

    def _answer(self, status: HTTPStatus, body: dict) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="complaint-tickets"')
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str, problems: list[dict] | None = None) -> None:
        self._answer(status, {"error": message, **({"problems": problems} if problems else {})})

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode("utf-8"), self.server.token):
            return True
        self._error(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
        return False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorised():
            return
        match = _TICKET_PATH.match(self.path)
        if not match:
            self._error(HTTPStatus.NOT_FOUND, "use GET /tickets/{ticket_id} or POST /tickets/{ticket_id}/updates")
            return
        state = lifecycle.ticket_state(self.server.engine, match["ticket_id"])
        if state is None:
            self._error(HTTPStatus.NOT_FOUND, f"{match['ticket_id']!r} is not a stored ticket")
            return
        self._answer(HTTPStatus.OK, {"ticket": lifecycle.state_as_json(state, self.server.settings.timezone)})

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorised():
            return
        match = _UPDATE_PATH.match(self.path)
        if not match:
            self._error(HTTPStatus.NOT_FOUND, "use POST /tickets/{ticket_id}/updates")
            return
        body = self._json_body()
        if body is None:
            return
        ticket_id = match["ticket_id"]
        if str(body.get("ticket_id", ticket_id)) != ticket_id:
            self._error(HTTPStatus.BAD_REQUEST, f"the body's ticket_id {body['ticket_id']!r} is not the path's "
                                                f"{ticket_id!r}")
            return
        update, problems = updates.parse_update({**body, "ticket_id": ticket_id}, where=f"ticket {ticket_id}",
                                                source="http", default_by=None,
                                                timezone=self.server.settings.timezone)
        try:
            if problems:
                raise updates.TicketUpdateError("", problems)
            result = lifecycle.apply_updates(self.server.engine, [update])
        except updates.TicketUpdateError as exc:
            status = min((_STATUS_OF[p.kind] for p in exc.problems), key=_precedence)
            self._error(status, str(exc), [{"field": p.column, "message": p.message} for p in exc.problems])
            return
        except lifecycle.ConcurrentUpdateError as exc:
            self._error(HTTPStatus.CONFLICT, str(exc))
            return
        state = lifecycle.ticket_state(self.server.engine, ticket_id)
        self._answer(HTTPStatus.OK, {"applied": bool(result.applied), "unchanged": bool(result.unchanged),
                                     "ticket": lifecycle.state_as_json(state, self.server.settings.timezone)})

    def _json_body(self) -> dict | None:
        if "json" not in self.headers.get("Content-Type", ""):
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the update as application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            return None
        if length > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"an update is at most {MAX_BODY_BYTES} bytes")
            return None
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"the body is not UTF-8 JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self._error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object with status, by, …")
            return None
        return body


def _precedence(status: HTTPStatus) -> int:
    """Which answer a request with several problems gets: unknown ticket, then illegal move, then bad field."""
    return [HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.BAD_REQUEST].index(status)
