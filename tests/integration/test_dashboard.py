"""The dashboard in headless Chromium (Debian's chromium and chromium-driver, which
`make test` installs), driven while the excerpt is being replayed into a real
broker, worker and Triton: the page asks for the API token first, then shows a
specific member's alert, as published on crm.churn-alerts, and the member view
opens from it.

MEMBERSTREAM_SCREENSHOT=PATH also saves the page as a PNG (docs/dashboard.png)."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from stream.contract import topics
from stream.tools.launcher import start_broker
from tests.fixtures.expected import expected_alert_id

from .conftest import Cluster, excerpt_lines

pytestmark = pytest.mark.integration

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MEMBER = "12707"  # one alert in the excerpt (tests/fixtures/expected.py)
TOKEN = "dashboard-test-token-0123456789"


def browser(user_data: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As root, without a sandbox; no background connections (the network is closed).
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--window-size=1280,1400",
                 f"--user-data-dir={user_data}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(DRIVER)),
                    reason="Debian's chromium and chromium-driver are not installed (make test installs them)")
def test_the_page_shows_a_members_alert_during_a_replay(triton, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver
    broker = start_broker(tmp_path / "broker")
    cluster = Cluster(broker, triton, tmp_path)
    driver = None
    replay = None
    try:
        worker = cluster.start_worker(api_token=TOKEN)
        lines = excerpt_lines()
        driver = browser(Path(tempfile.mkdtemp(dir=tmp_path)))
        driver.get(f"{worker.web_url}/dashboard")
        # Signed out: the sign-in form, and no data behind it.
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "alerts"))
        sent = []
        replay = threading.Thread(target=lambda: sent.append(cluster.replay(lines, rate=300.0)))
        replay.start()
        selector = f'#alerts li[data-member="{MEMBER}"]'
        wait = WebDriverWait(driver, 90, poll_frequency=0.25)
        # Text, not elements: the feed is redrawn whenever a newer alert arrives.
        shown = wait.until(lambda d: d.execute_script(
            "const e = document.querySelector(arguments[0]); return e && e.textContent;", selector))
        replay.join(timeout=60)
        cluster.wait_processed(worker, sent[0])
        [alert] = [a for a in cluster.read_json(topics.CHURN_ALERTS) if a["member_id"] == MEMBER]
        assert alert["alert_id"] == expected_alert_id(MEMBER)
        assert f"p={alert['churn_probability']:.2f}" in shown
        assert alert["risk_level"] in shown and alert["reasons"][0]["code"] in shown
        # The page's rates, stages and churn histogram came from the same worker.
        wait.until(lambda d: "no alert yet" not in d.find_element(By.ID, "alerts").text)
        wait.until(lambda d: d.find_element(By.ID, "health").text.startswith("ok"))
        assert "members" in driver.find_element(By.ID, "summary").text
        # The member view, opened from the alert.
        driver.execute_script("document.querySelector(arguments[0] + ' .member-link').click();", selector)
        wait.until(lambda d: d.find_elements(By.ID, "member-title")
                   and d.find_element(By.ID, "member-title").text == MEMBER)
        state = worker.member(MEMBER)
        assert driver.find_element(By.ID, "member-churn").text == f"{state['churn_probability']:.2f}"
        page = driver.find_element(By.ID, "member").text
        assert state["sequence"][-1] in page and "P(alive)" in page
        if os.environ.get("MEMBERSTREAM_SCREENSHOT"):
            driver.save_screenshot(os.environ["MEMBERSTREAM_SCREENSHOT"])
    finally:
        if driver is not None:
            driver.quit()  # chromedriver and chromium stopped by the driver's own PID
        if replay is not None:
            replay.join(timeout=60)
        cluster.stop()
        broker.process.stop()
