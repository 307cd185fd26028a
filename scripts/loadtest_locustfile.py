"""What one signed-in user does in the load test (`make load`, driven by scripts/loadtest.py).

Each simulated user signs in through the login form with its own account (sales reps and managers,
read from LOAD_CREDENTIALS), then, with 1-3 s of thinking between clicks, opens the customer list,
searches it (Chinese names, surnames, pinyin, phone digits, an e-mail domain, with sorts and filters),
opens a customer's 360 page, logs a call through the log form (a real POST with its CSRF token), and
looks at the start page (the dashboard). Requests go to 127.0.0.1 with the tenant's host name in the
Host header. Any 5xx is counted (LOAD_5XX_FILE) and makes the run fail.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import threading
from html.parser import HTMLParser
from pathlib import Path

from locust import HttpUser, between, events, task

CREDENTIALS = json.loads(Path(os.environ["LOAD_CREDENTIALS"]).read_text(encoding="utf-8"))
TENANT_HOST = os.environ["LOAD_TENANT_HOST"]
SERVER_ERRORS_FILE = os.environ.get("LOAD_5XX_FILE", "")
SEARCHES = [
    {"q": "王"},
    {"q": "王小"},
    {"q": "陈"},
    {"q": "李娜"},
    {"q": "张伟"},
    {"q": "wangxiao"},
    {"q": "zhang", "sort": "-last_order"},
    {"q": "li", "sort": "-total_spent"},
    {"q": "138"},
    {"q": "qq.com"},
    {"q": "163.com", "email_consent": "yes"},
    {"q": "王", "city": "上海", "sort": "-total_spent"},
]
LIST_VIEWS = [{}, {"sort": "name"}, {"sort": "-total_spent"}, {"sort": "-last_order"}, {"city": "北京"}]
CUSTOMER_LINK = re.compile(r'href="/customers/(\d+)/"')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

_next_account = itertools.count()
_lock = threading.Lock()
server_errors: list[dict] = []


class _FormFields(HTMLParser):
    """The fields of the first <form> whose action contains `action`, with their default values."""

    def __init__(self, action: str):
        super().__init__()
        self.action, self.inside, self.done = action, False, False
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.done:
            return
        if tag == "form" and self.action in (attrs.get("action") or ""):
            self.inside = True
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = (attrs.get("type") or "text").lower()
            if kind in ("radio", "checkbox"):
                if "checked" in attrs:
                    self.fields[name] = attrs.get("value") or "on"
            elif kind not in ("file", "submit", "button"):
                self.fields[name] = attrs.get("value") or ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select:
            if self._select not in self.fields or "selected" in attrs:
                self.fields[self._select] = attrs.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form" and self.inside:
            self.inside, self.done = False, True


def form_fields(html: str, action: str) -> dict[str, str]:
    parser = _FormFields(action)
    parser.feed(html)
    return parser.fields


@events.request.add_listener
def _count_server_errors(request_type, name, response_time, response_length, response=None, **kwargs):
    status = getattr(response, "status_code", 0) or 0
    if status >= 500:
        with _lock:
            server_errors.append({"method": request_type, "name": name, "status": status})


@events.quitting.add_listener
def _write_server_errors(environment, **kwargs):
    if SERVER_ERRORS_FILE:
        with open(SERVER_ERRORS_FILE, "w", encoding="utf-8") as handle:
            json.dump(server_errors, handle)


class CrmUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        self.client.headers["Host"] = TENANT_HOST
        self.client.headers["Accept-Language"] = random.choice(["zh-hans", "en"])
        with _lock:
            account = CREDENTIALS[next(_next_account) % len(CREDENTIALS)]
        self.role = account["role"]
        self.customer_ids: list[int] = []
        page = self.client.get("/accounts/login/", name="sign-in (form)")
        token = CSRF.search(page.text).group(1)
        with self.client.post(
            "/accounts/login/",
            {"csrfmiddlewaretoken": token, "username": account["email"], "password": account["password"]},
            name="sign-in",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"sign-in answered {response.status_code}")

    def _remember_customers(self, html: str) -> None:
        ids = [int(pk) for pk in CUSTOMER_LINK.findall(html)]
        if ids:
            self.customer_ids = ids[:50]

    @task(3)
    def customer_list(self):
        response = self.client.get("/customers/", params=random.choice(LIST_VIEWS), name="list")
        self._remember_customers(response.text)

    @task(3)
    def search(self):
        response = self.client.get("/customers/", params=random.choice(SEARCHES), name="search")
        self._remember_customers(response.text)

    @task(2)
    def customer_360(self):
        if not self.customer_ids:
            return self.customer_list()
        self.client.get(f"/customers/{random.choice(self.customer_ids)}/", name="360 page")

    @task(1)
    def log_interaction(self):
        if not self.customer_ids:
            return self.customer_list()
        url = f"/interactions/log/{random.choice(self.customer_ids)}/"
        page = self.client.get(url, name="log form")
        fields = form_fields(page.text, url)
        fields.update(subject="Load test call", notes="客户询问会员积分 (load test)")
        with self.client.post(
            url, fields, name="log interaction", allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code != 302:
                response.failure(f"log answered {response.status_code} (form not accepted)")

    @task(1)
    def dashboard(self):
        self.client.get("/", name="dashboard")
