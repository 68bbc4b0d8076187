"""The attention explorer page in a real headless browser (Debian's chromium, via selenium)."""

import shutil
import tempfile

import numpy as np
import pytest

from attn_research.evaluation import explorer

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


def chromium():
    """A headless chromium driven by chromium-driver; skips if they are not installed."""
    driver_path = shutil.which("chromedriver")
    if not driver_path or not shutil.which("chromium"):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install them)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={tempfile.mkdtemp()}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def hover_weights(browser, path: str, item: int, target_word: int, layer: str | None = None):
    """Opens the page, hovers target word `target_word` of item `item` (after picking `layer`),
    and returns (each source word's data-weight, the index of the one marked top)."""
    browser.get(f"file://{path}")
    block = browser.find_elements(By.CSS_SELECTOR, ".item")[item]
    if layer is not None:
        Select(block.find_element(By.TAG_NAME, "select")).select_by_value(layer)
    word = block.find_elements(By.CSS_SELECTOR, ".tgt span")[target_word]
    ActionChains(browser).move_to_element(word).perform()
    sources = block.find_elements(By.CSS_SELECTOR, ".src span")
    weights = [float(s.get_attribute("data-weight")) for s in sources]
    top = [i for i, s in enumerate(sources) if "top" in s.get_attribute("class").split()]
    return np.asarray(weights), top


def test_hovering_a_target_word_shades_the_source_words_it_attends(browser, tmp_path):
    rng = np.random.default_rng(0)
    first = rng.dirichlet(np.ones(4), size=3)  # [3 target words, 4 source words]
    second = rng.dirichlet(np.ones(4), size=3)
    pairs = [
        (["a", "b"], ["x"], {"layer 1": np.asarray([[0.2, 0.8]])}),
        (["the", "<cat>", "sat", "."], ["el", "gato", "&"], {"layer 1": first, "layer 2": second}),
    ]
    path = tmp_path / "page.html"
    explorer.write(str(path), explorer.translation_page(pairs, "test </script> page"))
    assert "http" not in path.read_text()  # self-contained: nothing to fetch
    weights, top = hover_weights(browser, str(path), 1, 1)
    np.testing.assert_allclose(weights, first[1], atol=1e-5)
    assert top == [int(np.argmax(first[1]))]
    weights, top = hover_weights(browser, str(path), 1, 2, layer="layer 2")
    np.testing.assert_allclose(weights, second[2], atol=1e-5)
    assert top == [int(np.argmax(second[2]))]
    words = browser.find_elements(By.CSS_SELECTOR, ".item")[1].find_elements(
        By.CSS_SELECTOR, "span"
    )
    assert [w.text for w in words][:2] == ["the", "<cat>"]


def test_image_page_shows_the_selected_map(browser, tmp_path):
    image = np.zeros((8, 8, 1), np.uint8)
    maps = {"layer1": np.eye(2), "rollout": np.ones((2, 2)) / 4}
    path = tmp_path / "images.html"
    explorer.write(str(path), explorer.image_page([("img: 3 0.90", image, maps)], "images"))
    browser.get(f"file://{path}")
    shown = lambda: [
        o.get_attribute("data-map")
        for o in browser.find_elements(By.CSS_SELECTOR, "img.overlay")
        if o.is_displayed()
    ]
    assert shown() == ["layer1"]
    Select(browser.find_element(By.TAG_NAME, "select")).select_by_value("rollout")
    assert shown() == ["rollout"]
