"""Check a running JupyterLab the way a student meets it, without a browser:

    python3 docker/lab_check.py http://127.0.0.1:8888 TOKEN [notebooks/01_dnn.ipynb]

1. the Lab page at /lab/tree/notebooks loads (HTTP 200, JupyterLab's page);
2. the news pop-up is off in the settings JupyterLab serves;
3. a python3 kernel starts and runs a cell;
4. the notebook, opened and saved as JupyterLab does it (with the kernel's own
   language_info written into its metadata), keeps every byte of its file.

Prints one line per check; exits 1 at the first that fails. `make docker-test`
runs it inside the image; tests/test_jupyter.py runs it against this environment's
JupyterLab. Needs only the standard library and websocket-client (a dependency
of jupyter_server).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid

import websocket

NEWS = "@jupyterlab/apputils-extension:notification"


class CheckFailed(Exception):
    pass


class Lab:
    def __init__(self, base: str, token: str):
        self.base, self.token = base.rstrip("/"), token

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, method: str, path: str, body: dict | None = None) -> dict:
        status, payload = self.request(method, path, body)
        if status >= 300:
            raise CheckFailed(f"{method} {path}: HTTP {status}: {payload[:300]!r}")
        return json.loads(payload) if payload else {}

    def raw_file(self, path: str) -> str:
        return self.json("GET", f"/api/contents/{path}?type=file&format=text&content=1")["content"]


def kernel_session(lab: Lab, kernel_id: str):
    url = lab.base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?token={lab.token}"
    return websocket.create_connection(url, timeout=120)


def ask(ws, msg_type: str, content: dict, channel: str = "shell") -> list[dict]:
    """Send one request; return every message that answers it, up to its reply and the kernel's idle."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": msg_type, "username": "check",
                                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
                        "parent_header": {}, "metadata": {}, "content": content, "channel": channel}))
    answers, replied, idle = [], False, False
    while not (replied and idle):
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        answers.append(message)
        replied = replied or message["msg_type"] == msg_type.replace("_request", "_reply")
        idle = idle or (message["msg_type"] == "status" and message["content"]["execution_state"] == "idle")
    return answers


def check(base: str, token: str, notebook: str) -> None:
    lab = Lab(base, token)
    status, page = lab.request("GET", "/lab/tree/notebooks")
    if status != 200 or b"jupyter-config-data" not in page:
        raise CheckFailed(f"JupyterLab's page /lab/tree/notebooks did not load: HTTP {status}: {page[:300]!r}")
    print("lab-check: JupyterLab's page loads")

    news = lab.json("GET", f"/lab/api/settings/{NEWS}")
    # The overrides become the schema's defaults; the user's own settings come on top.
    fetch = news["settings"].get("fetchNews", news["schema"]["properties"]["fetchNews"].get("default"))
    if fetch != "false":
        raise CheckFailed(f"JupyterLab would ask to fetch news: {NEWS} fetchNews is {fetch!r}")
    print("lab-check: the news pop-up is off")

    kernel_id = lab.json("POST", "/api/kernels", {"name": "python3"})["id"]
    try:
        ws = kernel_session(lab, kernel_id)
        language_info = next(m for m in ask(ws, "kernel_info_request", {})
                             if m["msg_type"] == "kernel_info_reply")["content"]["language_info"]
        ran = ask(ws, "execute_request", {"code": "print(6 * 7)", "silent": False, "store_history": False,
                                          "user_expressions": {}, "allow_stdin": False})
        if not any(m["msg_type"] == "stream" and m["content"]["text"].strip() == "42" for m in ran):
            raise CheckFailed(f"the python3 kernel did not run a cell: {[m['msg_type'] for m in ran]}")
        ws.close()
    finally:
        lab.request("DELETE", f"/api/kernels/{kernel_id}")
    print(f"lab-check: a python3 kernel (Python {language_info.get('version')}) runs a cell")

    before = lab.raw_file(notebook)
    model = lab.json("GET", f"/api/contents/{notebook}?type=notebook&content=1")
    if model["content"]["metadata"].get("language_info") != language_info:
        raise CheckFailed(f"{notebook} would show as modified: its language_info "
                          f"{model['content']['metadata'].get('language_info')} is not the kernel's {language_info}")
    model["content"]["metadata"]["language_info"] = language_info  # what JupyterLab does on opening
    lab.json("PUT", f"/api/contents/{notebook}", {"type": "notebook", "format": "json",
                                                  "content": model["content"]})
    if lab.raw_file(notebook) != before:
        raise CheckFailed(f"{notebook} changed when opened and saved in JupyterLab")
    print(f"lab-check: {notebook} opens unmodified and saves unchanged")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        check(argv[0], argv[1], argv[2] if len(argv) == 3 else "notebooks/01_dnn.ipynb")
    except (CheckFailed, OSError, websocket.WebSocketException) as err:
        print(f"lab-check: FAIL: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
