"""The web page in a real browser: headless Chromium driven by Selenium (Debian's chromium-driver).

The page is loaded from the test server, a CIFAR-10 JPEG is uploaded through
its file input, and the label it shows must be the library's prediction; the
k-NN neighbours and linear templates must be drawn. Screenshots go to the
test's folder, or to ``$IMGCLF_SCREENSHOT_DIR`` when set (to look at them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (a dev extra)")
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium and chromium-driver not installed (make test installs them)",
)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,1250",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(flag)  # fmt: skip
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        try:
            driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
        except WebDriverException as exc:
            pytest.skip(f"cannot start headless Chromium: {exc.msg}")
        driver.set_page_load_timeout(60)
        yield driver
        driver.quit()


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("IMGCLF_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.find_element(By.TAG_NAME, "body").screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def _open(browser, server, model: str) -> None:
    browser.get(f"http://127.0.0.1:{server.port}/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model-select option")) > 0)
    Select(browser.find_element(By.ID, "model-select")).select_by_value(model)


def _answer(browser) -> str:
    """The label shown once the answer arrived (status "answered in ... ms")."""
    try:
        WebDriverWait(browser, 30).until(
            lambda d: d.find_element(By.ID, "status").text.startswith(("answered", "4", "5"))
        )
    except TimeoutException:
        pytest.fail(f"no answer; status: {browser.find_element(By.ID, 'status').text!r}")
    assert browser.find_element(By.ID, "status").text.startswith("answered")
    return browser.find_element(By.ID, "predicted-label").text


def _all_images_loaded(browser, selector: str) -> int:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".filter(i => i.complete && i.naturalWidth > 0).length",
        selector,
    )


@pytest.fixture(scope="module")
def cifar(request):
    return request.getfixturevalue("cifar_files")


def test_upload_a_cifar_jpeg_to_knn(browser, server, saved_models, cifar, tmp_path):
    from imgclf.predict import predict_file

    jpeg = cifar["images"][6]  # test/<class>/0000.jpg
    _open(browser, server, "cifar-knn")
    browser.find_element(By.ID, "file-input").send_keys(str(jpeg))
    label = _answer(browser)
    want = predict_file(saved_models["cifar-knn"], jpeg)
    assert label == want["top"][0]["class"]
    bars = browser.find_elements(By.CSS_SELECTOR, "#top-bars li")
    assert [b.find_element(By.CLASS_NAME, "class-name").text for b in bars] == [
        t["class"] for t in want["top"]
    ]
    k = saved_models["cifar-knn"].model.k
    WebDriverWait(browser, 10).until(lambda d: _all_images_loaded(d, "#neighbors img") == k)
    assert not browser.find_element(By.ID, "templates-section").is_displayed()
    _screenshot(browser, tmp_path, "page-knn")


def test_linear_model_shows_templates_with_the_prediction_outlined(
    browser, server, saved_models, cifar, tmp_path
):
    from imgclf.predict import predict_file

    jpeg = cifar["images"][2]
    _open(browser, server, "cifar-linear")
    browser.find_element(By.ID, "file-input").send_keys(str(jpeg))
    label = _answer(browser)
    assert label == predict_file(saved_models["cifar-linear"], jpeg)["top"][0]["class"]
    WebDriverWait(browser, 10).until(lambda d: _all_images_loaded(d, "#templates img") == 10)
    outlined = browser.find_elements(By.CSS_SELECTOR, "#templates .tile.highlight")
    assert [t.get_attribute("data-class") for t in outlined] == [label]
    assert not browser.find_element(By.ID, "neighbors-section").is_displayed()
    _screenshot(browser, tmp_path, "page-linear")


def test_random_test_image_from_data(browser, server, saved_models, cifar, tmp_path):
    """``--data``: the button fetches a test image from the server and classifies it."""
    from imgclf.datasets import load_folder
    from imgclf.predict import rank_images

    test = load_folder(cifar["data"])["test"]
    _open(browser, server, "cifar-net")
    button = browser.find_element(By.ID, "random-button")
    assert button.is_displayed()
    button.click()
    label = _answer(browser)
    caption = browser.find_element(By.ID, "true-class").text  # "test image #12, labelled cat"
    index = int(caption.split("#")[1].split(",")[0])
    assert caption.endswith(f"labelled {test.classes[test.labels[index]]}")
    want = rank_images(saved_models["cifar-net"], test.images[index].reshape(1, -1))[0]
    assert label == want["top"][0]["class"]
    _screenshot(browser, tmp_path, "page-net-random")


def test_a_bad_file_shows_the_error(browser, server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image at all")
    _open(browser, server, "digits-knn")
    browser.find_element(By.ID, "file-input").send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "status").text)
    status = browser.find_element(By.ID, "status").text
    assert status.startswith("400: ") and "not an image" in status
