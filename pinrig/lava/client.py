"""A LAVA server over XML-RPC, as lavacli talks to it: `scheduler.jobs.submit`, `.show`,
`.definition`, `.logs`. The token goes in the URL's user-info (https://USER:TOKEN@host/RPC2),
which is how LAVA authenticates XML-RPC; it is never printed (errors name the server without it).
"""
from __future__ import annotations

import socket
import time
import xmlrpc.client
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import quote, urlsplit, urlunsplit

from pinrig.errors import InfraError, UserError

FINISHED = "Finished"
LOG_PAGES = 10000        # a job's log is read in pages; this many at most


def rpc_url(url: str, user: Optional[str] = None, token: Optional[str] = None) -> str:
    """The endpoint with credentials in it; UserError for a URL that cannot be one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--url {url}: expected http(s)://HOST[:PORT]/RPC2")
    path = parts.path if parts.path.rstrip("/").endswith("RPC2") else \
        parts.path.rstrip("/") + "/RPC2"
    if token and not user:
        raise UserError("--token needs --user (LAVA tokens belong to a user)")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    if user:
        cred = quote(user, safe="") + (":" + quote(token, safe="") if token else "")
        netloc = f"{cred}@{netloc}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


@dataclass
class JobState:
    id: str
    state: str
    health: str
    description: str = ""


class Lab:
    def __init__(self, url: str, user: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = 60.0):
        self.where = urlunsplit(urlsplit(rpc_url(url))[:3] + ("", ""))  # no credentials
        self.proxy = xmlrpc.client.ServerProxy(rpc_url(url, user, token), allow_none=True)
        self.timeout = timeout

    def _call(self, name: str, *args):
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.timeout)
        try:
            return getattr(self.proxy, name)(*args)
        except xmlrpc.client.Fault as e:
            raise InfraError(f"LAVA {self.where}: {name}: {e.faultString} (code {e.faultCode})")
        except xmlrpc.client.ProtocolError as e:
            raise InfraError(f"LAVA {self.where}: {name}: HTTP {e.errcode} {e.errmsg}")
        except (OSError, xmlrpc.client.Error) as e:
            raise InfraError(f"LAVA {self.where}: {name}: {e}")
        finally:
            socket.setdefaulttimeout(old)

    def submit(self, definition: str) -> list:
        """Job id(s) of one submitted definition (a multinode job gives several)."""
        res = self._call("scheduler.jobs.submit", definition)
        ids = res if isinstance(res, list) else [res]
        if not ids or not all(isinstance(i, (int, str)) and str(i).strip() for i in ids):
            raise InfraError(f"LAVA {self.where}: submit answered {res!r}, not job ids")
        return [str(i) for i in ids]

    def show(self, job_id: str) -> JobState:
        d = self._call("scheduler.jobs.show", job_id)
        if not isinstance(d, dict):
            raise InfraError(f"LAVA {self.where}: show {job_id}: not a job description")
        return JobState(str(d.get("id", job_id)), str(d.get("state", "")),
                        str(d.get("health", "")), str(d.get("description", "")))

    def definition(self, job_id: str) -> str:
        d = self._call("scheduler.jobs.definition", job_id)
        if not isinstance(d, str):
            raise InfraError(f"LAVA {self.where}: definition {job_id}: not text")
        return d

    def logs(self, job_id: str) -> str:
        """The whole log of a job (paged: `logs(id, line)` → (finished, text))."""
        out, line = [], 0
        for _ in range(LOG_PAGES):
            res = self._call("scheduler.jobs.logs", job_id, line)
            if not (isinstance(res, (list, tuple)) and len(res) == 2):
                raise InfraError(f"LAVA {self.where}: logs {job_id}: unexpected answer")
            finished, data = res
            text = data.data.decode("utf-8", "replace") if isinstance(data, xmlrpc.client.Binary) \
                else str(data or "")
            if text:
                out.append(text)
                line += text.count("\n")
            if finished or not text:
                break
        return "".join(out)

    def wait(self, job_ids: list, timeout: float, poll: float = 30.0,
             echo: Callable = print, sleep=time.sleep) -> None:
        """Until every job has finished; InfraError naming those that did not in time."""
        end = time.monotonic() + timeout
        pending = list(job_ids)
        while pending:
            pending = [j for j in pending if self.show(j).state != FINISHED]
            if not pending:
                return
            if time.monotonic() >= end:
                raise InfraError(f"LAVA {self.where}: job(s) {', '.join(pending)} not finished "
                                 f"after {timeout:.0f}s")
            echo(f"rig: lava: waiting for job(s) {', '.join(pending)}")
            sleep(poll)
