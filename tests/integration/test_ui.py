"""The page in a real headless browser (Debian's Chromium through Selenium): a platform
applied and backfilled, a dead letter published as the streaming job publishes one, a
consistency result saved as the command saves it; then the page must show the rows,
the dead letter, the result, and an entity lookup with exactly the values Feast returns."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from jobs.retrieval import get_online
from simulator.traffic import SimulationConfig, simulate, write_jsonl
from tests.integration.checks import records

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
VIEWS = ("user_review_stats", "user_activity", "business_review_stats")
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2400",
)


@pytest.fixture(scope="module")
def history(platform: PlatformConfig, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """Two days of simulated events, backfilled into BigQuery and the online stores."""
    config = SimulationConfig(
        seed=11,
        start=datetime.now(UTC).replace(microsecond=0) - timedelta(days=2),
        duration=timedelta(days=1, hours=20),
        events=1500,
        users=25,
        businesses=8,
        bad_share=0.02,
    )
    messages = list(simulate(config))
    folder = tmp_path_factory.mktemp("ui-history")
    write_jsonl(messages, folder)
    from jobs.backfill import run_backfill

    run_backfill(platform, REGISTRY, [str(folder)], views=VIEWS)
    return messages


@pytest.fixture(scope="module")
def page(platform: PlatformConfig) -> Iterator[str]:
    """The page served by uvicorn on a free port, in this process."""
    import uvicorn

    from ui.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(platform, REGISTRY), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "the page did not start"
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("chromium and chromedriver are needed (infra/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _publish_dead_letter(platform: PlatformConfig) -> str:
    """An invalid message, as the streaming job sends it to `review-events-dlq`."""
    from google.cloud import pubsub_v1

    from feature_store.events import DeadLetter, validate
    from online.pubsub_io import dead_letter_message

    letter = validate("review-events", b'{"event_type": "review_created"}')
    assert isinstance(letter, DeadLetter)
    message = dead_letter_message(letter)
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(platform.project, platform.topic_id("review-events-dlq"))
    publisher.publish(topic, message.data, **message.attributes).result(timeout=30)
    return str(letter.reason)


def test_page_shows_the_platform_and_a_lookup_equal_to_feast(
    platform: PlatformConfig, history: list[Any], page: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from common.last_results import CONSISTENCY, save_result
    from jobs.consistency import check_consistency
    from ui.app import display

    reason = _publish_dead_letter(platform)
    per_key = records(history)
    users = sorted({k for v, k in per_key if v == "user_review_stats"})
    report = check_consistency(
        platform,
        REGISTRY,
        ["user_review_stats"],
        datetime.now(UTC),
        entities={"user_review_stats": users},
    )
    save_result(platform, CONSISTENCY, {"views": ["user_review_stats"], **report.as_dict()})

    browser.get(page)
    for view in VIEWS:
        row = browser.find_element(By.CSS_SELECTOR, f'#freshness tr[data-view="{view}"]')
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        entities = len({k for v, k in per_key if v == view})
        assert cells[1] == str(entities), (view, cells)  # online rows: one per entity
        assert cells[5] == str(entities), (view, cells)  # offline entities
        assert cells[2] != "-", (view, cells)
    dlq = browser.find_element(By.CSS_SELECTOR, '#side-topics tr[data-topic="review-events-dlq"]')
    assert dlq.find_element(By.CLASS_NAME, "count").text == "1"
    assert f"{reason}: 1" in dlq.text
    consistency = browser.find_element(By.ID, "consistency").text
    assert f"{report.values} values of {report.entities} entities" in consistency, consistency
    mismatches = browser.find_element(By.CSS_SELECTOR, "#consistency .mismatches").text
    assert mismatches == str(len(report.mismatches))

    user = max(users, key=lambda k: len(per_key[("user_review_stats", k)]))
    Select(browser.find_element(By.ID, "lookup-view")).select_by_value("user_review_stats")
    browser.find_element(By.ID, "lookup-key").send_keys(user)
    browser.find_element(By.ID, "lookup-submit").click()
    # the form's GET loads a new page: a look straight after the click may see the old one
    rows = WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#lookup-values tbody tr")
    )
    refs = [f"user_review_stats:{f.name}" for f in REGISTRY.view("user_review_stats").features]
    expected = get_online(platform, refs, [{"user_id": user}])[0]
    shown = {r.get_attribute("data-feature"): r for r in rows}
    assert len(shown) == len(refs)
    for ref in refs:
        name = ref.split(":")[1]
        value = expected[ref.replace(":", "__")]
        assert json.loads(shown[name].get_attribute("data-value")) == value, name
        assert shown[name].find_element(By.CLASS_NAME, "value").text == display(value), name
    dots = browser.find_elements(By.CSS_SELECTOR, "#history svg circle")
    assert dots, "no chart of the feature's history"
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(r.startswith(page) for r in resources), resources

    shot = tmp_path / "feature-store-ui.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot of the page: {shot}")
