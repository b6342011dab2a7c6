"""The HTML report in a real headless browser (Debian's chromium driven by Selenium):
load it from file://, sort a column, filter, open a galaxy, and check what is shown.
A screenshot of each step is kept in tests/artifacts/report_browser/.

Skipped only when no chromium (or its driver) is installed; .ci/run installs them.
"""

from __future__ import annotations

import pathlib
import shutil
import time

import numpy as np
import pytest
from astropy.table import Table

ARTIFACTS = pathlib.Path(__file__).parent / "artifacts" / "report_browser"


def _binary(*names):
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _binary("chromium", "chromium-browser", "google-chrome")
DRIVER = _binary("chromedriver")


def large_table(directory, n):
    """A results table of n rows (no catalog: the report has no thumbnails)."""
    rng = np.random.default_rng(1)
    status = np.array(["converged"] * n, dtype=object)
    status[rng.random(n) < 0.05] = "hit a bound: 1_n"
    status[rng.random(n) < 0.01] = "failed: file not found"
    table = Table({"id": [f"obj{i:06d}" for i in range(n)], "1_MAG": rng.uniform(15, 22, n),
                   "1_MAG_ERR": rng.uniform(0.01, 0.1, n), "1_RE": rng.lognormal(1, 0.5, n),
                   "1_N": rng.uniform(0.5, 6, n), "1_AR": rng.uniform(0.1, 1, n), "1_PA": rng.uniform(-90, 90, n),
                   "CHI2NU": rng.lognormal(0, 0.3, n), "STATUS": status.astype(str)})
    path = pathlib.Path(directory) / "large.fits"
    table.write(path, overwrite=True)
    return path


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no chromium/chromedriver installed (apt-get install chromium chromium-driver; .ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def survey_report(tmp_path_factory):
    from galprof.plots import write_report

    from test_plots_fixtures import make_survey

    directory = tmp_path_factory.mktemp("survey")
    path, _ = make_survey(directory)
    write_report(path, directory / "report", progress=False, figures="flagged")
    return directory / "report" / "index.html"


def _wait(driver, condition, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the page")


def _column(driver, name):
    """The displayed values of column ``name`` on the current page."""
    from selenium.webdriver.common.by import By

    heads = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#galaxies thead th")]
    k = heads.index(name)
    return [row.find_elements(By.TAG_NAME, "td")[k].text
            for row in driver.find_elements(By.CSS_SELECTOR, "#galaxies tbody tr")]


def _shot(driver, name):
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_report_sort_filter_open(browser, survey_report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.get(survey_report.as_uri())
    _wait(d, lambda: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert d.find_element(By.ID, "count").text == "13 of 13 galaxies"
    assert len(d.find_elements(By.CSS_SELECTOR, "#galaxies tbody tr")) == 13
    _wait(d, lambda: d.execute_script(
        "return Array.from(document.querySelectorAll('td.thumb img')).filter(i => i.complete && i.naturalWidth > 0)"
        ".length") == 12)  # every galaxy but the failed one has a thumbnail
    assert "galaxies" in d.find_element(By.ID, "summary").text
    _shot(d, "1-loaded")

    # sort by CHI2NU: ascending, then descending
    header = d.find_element(By.CSS_SELECTOR, "#galaxies th[data-col='CHI2NU']")
    header.click()
    values = [float(v) if v not in ("", "nan") else np.inf for v in _column(d, "CHI2NU")]
    assert values == sorted(values) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    values = [float(v) for v in _column(d, "CHI2NU") if v not in ("", "nan")]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(13.0)
    _shot(d, "2-sorted-chi2nu-descending")

    # filters: failed only; chi2nu > 2; a range of magnitudes
    d.find_element(By.ID, "q-failed").click()
    assert d.find_element(By.ID, "count").text == "1 of 13 galaxies"
    assert _column(d, "STATUS")[0].startswith("failed")
    d.find_element(By.ID, "q-clear").click()
    d.find_element(By.ID, "q-chi2").click()
    chi = [float(v) for v in _column(d, "CHI2NU")]
    assert len(chi) == 4 and all(v > 2 for v in chi)  # rows 0, 5, 10, 11
    assert "CHI2NU > 2" in d.find_element(By.ID, "active-filters").text
    _shot(d, "3-filter-chi2nu-gt-2")
    d.find_element(By.ID, "q-clear").click()
    from selenium.webdriver.support.ui import Select

    Select(d.find_element(By.ID, "range-column")).select_by_value("1_MAG")
    d.find_element(By.ID, "range-min").send_keys("17")
    d.find_element(By.ID, "range-add").click()
    mags = [float(v) for v in _column(d, "1_MAG")]
    assert mags and all(m >= 17 for m in mags)
    count = int(d.find_element(By.ID, "count").text.split()[0])
    assert count == len(mags) < 12
    d.find_element(By.CSS_SELECTOR, "input.status-filter[value='converged']").click()  # hide converged
    statuses = _column(d, "STATUS")
    assert all(not s.startswith("converged") for s in statuses)
    _shot(d, "4-filter-mag-and-status")
    d.find_element(By.ID, "q-clear").click()

    # open a galaxy with a full figure (gal001: hit a bound), rows sorted by id
    d.find_element(By.CSS_SELECTOR, "#galaxies th[data-col='id']").click()
    assert _column(d, "id")[:3] == ["broken", "gal000", "gal001"]
    row = [r for r in d.find_elements(By.CSS_SELECTOR, "#galaxies tbody tr")
           if r.find_elements(By.TAG_NAME, "td")[2].text == "gal001"][0]
    row.click()
    detail = d.find_element(By.ID, "detail")
    assert detail.is_displayed()
    assert d.find_element(By.ID, "detail-title").text == "gal001"
    figure = d.find_element(By.ID, "detail-figure")
    assert figure.get_attribute("src").endswith("figures/1.png")
    _wait(d, lambda: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", figure) > 500)
    params = d.find_element(By.ID, "detail-params").text
    assert "hit a bound: 1_n" in params and "1_RE" in params and "0.02" in params  # value and error
    _shot(d, "5-detail-gal001")
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    assert d.find_element(By.ID, "detail-title").text == "gal002"
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert not detail.is_displayed()
    # a converged galaxy without a full figure shows its thumbnail and the command to make one
    [r for r in d.find_elements(By.CSS_SELECTOR, "#galaxies tbody tr")
     if r.find_elements(By.TAG_NAME, "td")[2].text == "gal003"][0].click()
    assert d.find_element(By.ID, "detail-figure").get_attribute("src").endswith("thumbs/3.png")
    assert "galprof plot" in d.find_element(By.ID, "detail-note").text
    _shot(d, "6-detail-thumbnail")


def test_report_with_100000_rows_stays_responsive(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from galprof.plots import write_report

    path = large_table(tmp_path, 100_000)
    write_report(path, tmp_path / "big", progress=False)
    d = browser
    t0 = time.perf_counter()
    d.get((tmp_path / "big" / "index.html").as_uri())
    _wait(d, lambda: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", timeout=60)
    load = time.perf_counter() - t0
    assert d.find_element(By.ID, "count").text == "100000 of 100000 galaxies"
    assert len(d.find_elements(By.CSS_SELECTOR, "#galaxies tbody tr")) == 100  # paginated
    # sorting and filtering all rows in the page's own code
    t1 = time.perf_counter()
    d.execute_script("document.querySelector(\"#galaxies th[data-col='1_RE']\").click()")
    sort = time.perf_counter() - t1
    values = [float(v) for v in _column(d, "1_RE")]
    assert values == sorted(values)
    t2 = time.perf_counter()
    d.find_element(By.ID, "q-bound").click()
    filt = time.perf_counter() - t2
    n_bound = int(d.find_element(By.ID, "count").text.split()[0])
    assert 3000 < n_bound < 7000
    _shot(d, "7-100000-rows-hit-a-bound")
    (ARTIFACTS / "timings.txt").write_text(f"100000 rows: load {load:.2f} s, sort {sort:.2f} s, filter {filt:.2f} s\n")
    assert load < 30 and sort < 5 and filt < 5
