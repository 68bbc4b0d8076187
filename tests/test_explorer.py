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


def hover_weights(
    browser,
    path: str,
    item: int,
    target_word: int,
    layer: str | None = None,
    head: str | None = None,
):
    """Opens the page, hovers target word `target_word` of item `item` (after picking `layer`
    and `head`), and returns (each source word's data-weight, the index of the one marked
    top)."""
    browser.get(f"file://{path}")
    block = browser.find_elements(By.CSS_SELECTOR, ".item")[item]
    for css, value in (("select.layer", layer), ("select.head", head)):
        if value is not None:
            Select(block.find_element(By.CSS_SELECTOR, css)).select_by_value(value)
    word = block.find_elements(By.CSS_SELECTOR, ".tgt span")[target_word]
    ActionChains(browser).move_to_element(word).perform()
    sources = block.find_elements(By.CSS_SELECTOR, ".src span")
    weights = [float(s.get_attribute("data-weight")) for s in sources]
    top = [i for i, s in enumerate(sources) if "top" in s.get_attribute("class").split()]
    return np.asarray(weights), top


def test_views_name_the_average_and_each_head():
    heads = np.arange(12.0).reshape(2, 3, 2)
    views = explorer.views(["layer1", "rollout"], [heads.mean(0), np.ones((3, 2))], [heads, []])
    assert {k: list(v) for k, v in views.items()} == {
        "layer1": ["average", "head 1", "head 2"],
        "rollout": ["average"],
    }
    np.testing.assert_array_equal(views["layer1"]["head 2"], heads[1])


def test_hovering_a_target_word_shades_the_source_words_it_attends(browser, tmp_path):
    rng = np.random.default_rng(0)
    first = rng.dirichlet(np.ones(4), size=3)  # [3 target words, 4 source words]
    heads = rng.dirichlet(np.ones(4), size=(2, 3))  # layer 2's heads
    # Head 2 of layer 2 attends most where neither the average nor head 1 does.
    heads[1, 2] = [0.05, 0.05, 0.1, 0.8]
    heads[0, 2] = [0.9, 0.04, 0.03, 0.03]
    views = explorer.views(["layer 1", "layer 2"], [first, heads.mean(0)], [first[None], heads])
    pairs = [
        (["a", "b"], ["x"], {"layer 1": {"average": np.asarray([[0.2, 0.8]])}}),
        (["the", "<cat>", "sat", "."], ["el", "gato", "&"], views),
    ]
    path = tmp_path / "page.html"
    explorer.write(str(path), explorer.translation_page(pairs, "test </script> page"))
    assert "http" not in path.read_text()  # self-contained: nothing to fetch
    weights, top = hover_weights(browser, str(path), 1, 1)
    np.testing.assert_allclose(weights, first[1], atol=1e-5)
    assert top == [int(np.argmax(first[1]))]
    weights, top = hover_weights(browser, str(path), 1, 2, layer="layer 2")
    np.testing.assert_allclose(weights, heads.mean(0)[2], atol=1e-5)
    assert top == [0]
    weights, top = hover_weights(browser, str(path), 1, 2, layer="layer 2", head="head 2")
    np.testing.assert_allclose(weights, heads[1, 2], atol=1e-5)
    assert top == [3]
    # Layer 1 has a single head: its head selector offers only the average, and is hidden.
    block = browser.find_elements(By.CSS_SELECTOR, ".item")[1]
    Select(block.find_element(By.CSS_SELECTOR, "select.layer")).select_by_value("layer 1")
    head = block.find_element(By.CSS_SELECTOR, "select.head")
    assert [o.get_attribute("value") for o in Select(head).options] == [
        "average"
    ] and not head.is_displayed()
    words = browser.find_elements(By.CSS_SELECTOR, ".item")[1].find_elements(
        By.CSS_SELECTOR, "span"
    )
    assert [w.text for w in words][:2] == ["the", "<cat>"]


def test_image_page_shows_the_selected_map(browser, tmp_path):
    image = np.zeros((8, 8, 1), np.uint8)
    heads = np.stack([np.eye(2), 1 - np.eye(2)])
    views = explorer.views(["layer1", "rollout"], [heads.mean(0), np.ones((2, 2)) / 4], [heads, []])
    path = tmp_path / "images.html"
    explorer.write(str(path), explorer.image_page([("img: 3 0.90", image, views)], "images"))
    browser.get(f"file://{path}")
    shown = lambda: [
        (o.get_attribute("data-layer"), o.get_attribute("data-head"))
        for o in browser.find_elements(By.CSS_SELECTOR, "img.overlay")
        if o.is_displayed()
    ]
    select = lambda css, value: Select(browser.find_element(By.CSS_SELECTOR, css)).select_by_value(
        value
    )
    assert shown() == [("layer1", "average")]
    select("select.head", "head 2")
    assert shown() == [("layer1", "head 2")]
    select("select.layer", "rollout")
    assert shown() == [("rollout", "average")]


def test_hovering_a_target_word_rings_its_gold_sure_and_possible_links(browser, tmp_path):
    weights = np.asarray([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])  # [2 target words, 3 source words]
    views = {"decoder/attention": {"average": weights}}
    # Target word 1: Sure to source 1, Possible to source 2 (and Sure beats Possible at 0).
    sure, possible = {(0, 0), (1, 1), (0, 1)}, {(0, 0), (1, 1), (0, 1), (2, 1)}
    page = explorer.translation_page(
        [("a b c".split(), "x y".split(), views)], "t", [(sure, possible)]
    )
    path = tmp_path / "gold.html"
    explorer.write(str(path), page)
    _, top = hover_weights(browser, str(path), 0, 1)
    spans = browser.find_elements(By.CSS_SELECTOR, ".item .src span")
    classes = [set(s.get_attribute("class").split()) for s in spans]
    assert top == [2]
    assert classes == [{"sure"}, {"sure"}, {"top", "possible"}]
