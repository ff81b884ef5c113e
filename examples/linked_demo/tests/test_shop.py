"""The shop's tests, over HTTP. One of them fails: the shop answers an empty cart with a 500
(a division by zero), and Monitor shows that test's trace, down to the app's span that raised."""

import requests


def test_catalogue_lists_products(shop):
    answer = requests.get(f"{shop}/", timeout=10)
    assert answer.status_code == 200
    assert len(answer.json()["products"]) == 3


def test_product_page(shop):
    assert requests.get(f"{shop}/products/2", timeout=10).json()["name"] == "Rain jacket"
    assert requests.get(f"{shop}/products/99", timeout=10).status_code == 404


def test_search_finds_shoes(shop):
    # The slow request: the search reads the whole catalogue.
    answer = requests.get(f"{shop}/search", params={"q": "shoes"}, timeout=10)
    assert [p["name"] for p in answer.json()["products"]] == ["Trail shoes"]


def test_checkout(shop):
    answer = requests.post(f"{shop}/checkout", json={"items": [{"id": 1, "quantity": 2}]},
                           timeout=10)
    assert answer.json()["total"] == 178.0


def test_empty_cart_is_refused(shop):
    # Fails: the shop should say 400 "the cart is empty", and answers 500.
    answer = requests.post(f"{shop}/checkout", json={"items": []}, timeout=10)
    assert answer.status_code == 400, f"POST /checkout with an empty cart: {answer.status_code}"
