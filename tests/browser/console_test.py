#!/usr/bin/python3
"""The console in a real browser (headless Debian chromium through chromedriver).

Starts the given flowd with a tokens file, POSTs known batches, opens the console, answers
the token prompt, picks a range and a grouping, and checks that the table's cells equal
the API's answer for the same query exactly (a sum past 2^53 included); POSTs again and
waits for the live total; downloads the CSV and compares its bytes with the API's; fails
on any browser console error. Screenshots at 1280x800 and 390x844 go to --out.

Usage: console_test.py FLOWD_BINARY [--out DIR] [--screenshot FILE]
Waits on conditions only (never fixed sleeps); each wait is bounded.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

HOUR = int(time.time()) // 3600
BIG = 9007199254740993  # 2^53 + 1: a double would round it


def fail(message):
    raise AssertionError(message)


def wait_until(what, condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # polling interval of a bounded wait, not a fixed delay


class Flowd:
    def __init__(self, binary, workdir):
        created = subprocess.run([binary, "token", "create", "--name", "viewer", "--scopes",
                                  "read,write"], check=True, capture_output=True, text=True)
        self.token, line = created.stdout.split("\n")[:2]
        tokens = os.path.join(workdir, "tokens")
        with open(tokens, "w") as f:
            f.write(line + "\n")
        self.log_path = os.path.join(workdir, "flowd.log")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--tokens-file", tokens], stdout=self.log, stderr=subprocess.STDOUT)
        self.port = wait_until("flowd's listening line", self._port)

    def _port(self):
        if self.proc.poll() is not None:
            fail("flowd exited: " + open(self.log_path).read())
        m = re.search(r"http listening on [^\s]*:(\d+)", open(self.log_path).read())
        return int(m.group(1)) if m else None

    def request(self, method, target, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        conn.request(method, target, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def post(self, records):
        status, body = self.request("POST", "/flows", json.dumps(records),
                                    {"Content-Type": "application/json"})
        if status != 200:
            fail(f"POST /flows: {status} {body!r}")

    def stop(self):
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("flowd did not exit within 15 s of SIGTERM")
        if code != 0:
            fail(f"flowd exited {code}")


def rec(src, dest, vpc, tx, rx, hour):
    return {"src_app": src, "dest_app": dest, "vpc_id": vpc, "bytes_tx": tx, "bytes_rx": rx,
            "hour": hour}


def exact(text):
    """JSON with integers kept exact (Python ints are), for comparing with the page."""
    return json.loads(text)


def table_rows(driver):
    """The table as the page shows it: names as text, bytes as their exact data-value."""
    def cells(tr):
        out = []
        for td in tr.find_elements(By.TAG_NAME, "td"):
            value = td.get_attribute("data-value")
            out.append(value if value is not None else td.text)
        return out
    body = [cells(tr) for tr in driver.find_elements(By.CSS_SELECTOR, "#top-table tbody tr")]
    foot = [cells(tr) for tr in driver.find_elements(By.CSS_SELECTOR, "#top-table tfoot tr")]
    return body, foot


def expected_rows(summary):
    fields = summary["group_by"]
    body = []
    for i, row in enumerate(summary["top"]):
        body.append([str(i + 1)] + [row[f] for f in fields] +
                    [str(row["bytes_tx"]), str(row["bytes_rx"]),
                     str(row["bytes_tx"] + row["bytes_rx"])])
    foot = []
    for name in ("other", "total"):
        part = summary[name]
        groups = part["groups"]
        foot.append(["", f"{name} ({groups} {'group' if groups == 1 else 'groups'})",
                     str(part["bytes_tx"]), str(part["bytes_rx"]),
                     str(part["bytes_tx"] + part["bytes_rx"])])
    return body, foot


def curl_target(driver):
    """The /flows/summary target of the page's curl command (what it says it shows)."""
    curl = driver.find_element(By.ID, "curl").get_attribute("value")
    m = re.search(r"'(http://[^']+)'", curl)
    if not m:
        fail("no URL in the curl command: " + curl)
    url = urllib.parse.urlsplit(m.group(1))
    return url.path + "?" + url.query


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flowd")
    parser.add_argument("--out", default="build/browser")
    parser.add_argument("--screenshot", help="also save the 1280x800 screenshot here")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="flowd-browser-")
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads)

    flowd = Flowd(os.path.abspath(args.flowd), work)
    flowd.post([
        rec("checkout", "payments", "vpc-prod", 120_000, 480_000, HOUR - 2),
        rec("checkout", "payments", "vpc-prod", 90_000, 300_000, HOUR),
        rec("web", "checkout", "vpc-prod", 2_500_000, 9_100_000, HOUR - 1),
        rec("web", "search", "vpc-prod", 700_000, 1_200_000, HOUR),
        rec("batch", "warehouse", "vpc-data", BIG, 42, HOUR - 3),
        rec("<img src=x onerror=alert(1)>", "warehouse", "vpc-data", 5, 7, HOUR),
        rec("search", "index", "vpc-prod", 30_000, 10_000, HOUR - 1),
    ])

    options = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,800", "--disable-extensions", "--no-first-run"):
        options.add_argument(a)
    options.add_experimental_option("prefs", {"download.default_directory": downloads,
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(10)
    # A live update re-renders the table: an element found a moment ago may be gone when
    # read, so a wait polls again instead of failing.
    redrawn = (StaleElementReferenceException,)
    wait = WebDriverWait(driver, 10, poll_frequency=0.05, ignored_exceptions=redrawn)
    try:
        base = f"http://127.0.0.1:{flowd.port}"
        # / redirects; the page asks for a token when the API answers 401.
        driver.get(base + "/")
        wait.until(lambda d: d.current_url == base + "/ui/")
        wait.until(lambda d: d.find_element(By.ID, "token-dialog").get_attribute("open"))
        driver.find_element(By.ID, "token").send_keys(flowd.token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#top-table tbody tr"))
        stored = driver.execute_script("return sessionStorage.getItem('flowd-token')")
        if stored != flowd.token:
            fail("the token is not in sessionStorage")
        if driver.execute_script("return localStorage.length") != 0:
            fail("something was written to localStorage")

        # Pick a range (last 6 hours) and a grouping (source application), top 5.
        hours = driver.find_element(By.ID, "last-hours")
        hours.clear()
        hours.send_keys("6")
        Select(driver.find_element(By.ID, "group-by")).select_by_value("src_app")
        top = driver.find_element(By.ID, "top")
        top.clear()
        top.send_keys("5")
        driver.find_element(By.ID, "apply").click()
        wait.until(lambda d: "group_by=src_app" in d.find_element(By.ID, "curl")
                   .get_attribute("value") and "top=5" in d.find_element(By.ID, "curl")
                   .get_attribute("value"))
        target = curl_target(driver)
        if f"from={HOUR - 5}" not in target or f"to={HOUR + 1}" not in target:
            fail("the last 6 hours are not the range asked: " + target)

        def api_summary():
            status, body = flowd.request("GET", target)
            if status != 200:
                fail(f"GET {target}: {status} {body!r}")
            return exact(body)

        def table_matches_api():
            want = expected_rows(api_summary())
            got = table_rows(driver)
            return got if got == want else None

        try:
            wait.until(lambda d: table_matches_api())
        except TimeoutException:
            fail(f"table {table_rows(driver)} != API {expected_rows(api_summary())}")
        summary = api_summary()
        if summary["top"][0]["bytes_tx"] != BIG:
            fail("the seeded 2^53+1 is not the top row: " + json.dumps(summary))
        names = [tr.text for tr in driver.find_elements(By.CSS_SELECTOR, "td[data-field]")]
        if "<img src=x onerror=alert(1)>" not in names:
            fail(f"the HTML-looking name is not shown as text: {names}")
        if driver.find_elements(By.CSS_SELECTOR, "#top-table img"):
            fail("a name was inserted as HTML")

        # Live: the range holds the current hour; a new batch shows within 3 s.
        wait.until(lambda d: d.find_element(By.ID, "live").text.startswith("live"))
        flowd.post([rec("web", "search", "vpc-prod", 1_000_000, 3, HOUR)])
        new_total = str(api_summary()["total"]["bytes_tx"] + api_summary()["total"]["bytes_rx"])
        started = time.monotonic()
        try:
            WebDriverWait(driver, 3, poll_frequency=0.05, ignored_exceptions=redrawn).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "#top-table tfoot tr.total td")[-1]
                .get_attribute("data-value") == new_total)
        except TimeoutException:
            fail(f"the live total did not become {new_total} within 3 s: {table_rows(driver)}")
        live_seconds = time.monotonic() - started
        wait.until(lambda d: table_matches_api())

        # The CSV link downloads the API's bytes.
        status, want_csv = flowd.request("GET", driver.find_element(By.ID, "csv")
                                         .get_attribute("href").replace(base, ""))
        if status != 200:
            fail(f"CSV from the API: {status}")
        driver.find_element(By.ID, "csv").click()
        path = os.path.join(downloads, "flowd-summary.csv")
        wait_until("the CSV download", lambda: os.path.exists(path) and
                   open(path, "rb").read() == want_csv, timeout=10)

        # The chart: one stacked bar piece per non-zero (series, hour), a legend entry per series.
        rects = driver.find_elements(By.CSS_SELECTOR, "#chart svg rect")
        legend = driver.find_elements(By.CSS_SELECTOR, "#legend li")
        if not rects or len(legend) != len(summary["top"]) + 1:
            fail(f"chart: {len(rects)} bars, {len(legend)} legend entries")

        driver.execute_script("window.scrollTo(0, 0)")
        wait.until(lambda d: d.execute_script("return window.scrollY") == 0)
        driver.save_screenshot(os.path.join(args.out, "console-1280x800.png"))
        if args.screenshot:
            driver.save_screenshot(args.screenshot)
        driver.set_window_size(390, 844)
        wait.until(lambda d: d.execute_script("return window.innerWidth") <= 390)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        if width > 390:
            fail(f"the page is {width}px wide at 390px: it scrolls sideways")
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(os.path.join(args.out, "console-390x844.png"))

        # No errors in the browser console, but the 401 that asked for the token.
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and
                  "401 (Unauthorized)" not in e["message"]]
        if errors:
            fail("browser console errors: " + json.dumps(errors))
        print(f"browser: table equals the API, live total in {live_seconds:.2f}s, CSV equal, "
              f"screenshots in {args.out}")
    finally:
        driver.quit()
        flowd.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("browser test failed: " + str(e), file=sys.stderr)
        sys.exit(1)
