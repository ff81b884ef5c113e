import re

import pytest
from django.core import mail
from django.http import HttpRequest

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_home_page_links_to_each_area(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for href in ('href="/traces/"', 'href="/machines/"', 'href="/metrics/"', 'href="/api/docs/"'):
        assert href in html
    assert "Log in" in html


def test_areas_need_login_unless_dashboards_are_public(client, settings):
    for path in ("/traces/", "/machines/", "/metrics/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={path}"
    settings.DASHBOARDS_PUBLIC = True
    for path in ("/traces/", "/machines/", "/metrics/"):
        assert client.get(path).status_code == 200


def test_admin_is_at_admin(client, admin_client):
    assert client.get("/admin/").status_code == 302
    assert admin_client.get("/admin/").status_code == 200


def test_login_page_renders_in_the_site_layout(client):
    response = client.get("/login/?next=/traces/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="topbar"' in html and 'name="username"' in html and 'name="password"' in html
    assert "Log in to see that page." in html


def test_login_and_logout(client, django_user_model):
    django_user_model.objects.create_user("ada", "ada@example.com", "correct horse battery")
    bad = client.post("/login/", {"username": "ada", "password": "wrong"})
    assert bad.status_code == 200 and "correct username and password" in bad.content.decode()
    response = client.post("/login/", {"username": "ada", "password": "correct horse battery",
                                       "next": "/traces/"})
    assert response.status_code == 302 and response["Location"] == "/traces/"
    assert client.get("/traces/").status_code == 200
    assert "ada" in client.get("/").content.decode()
    assert client.post("/logout/").status_code == 302
    assert client.get("/traces/").status_code == 302


def test_password_reset_by_email(client, django_user_model):
    django_user_model.objects.create_user("ada", "ada@example.com", "old password 123")
    response = client.post("/password-reset/", {"email": "ada@example.com"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/done/"
    assert client.get(response["Location"]).status_code == 200
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/password-reset-confirm/\S+)", mail.outbox[0].body)[1]
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {
        "new_password1": "brand new secret 456", "new_password2": "brand new secret 456",
    })
    assert done.status_code == 302 and done["Location"] == "/password-reset-complete/"
    assert client.get("/password-reset-complete/").status_code == 200
    # django-axes counts logins per request: the test client's login passes one.
    assert client.login(request=HttpRequest(), username="ada", password="brand new secret 456")


def test_static_files_are_served_by_whitenoise(client):
    response = client.get("/static/css/site.css")
    assert response.status_code == 200
    assert b"--st-passed" in b"".join(response.streaming_content)


def test_login_in_a_real_browser(asgi_server, page, browser_login, django_user_model):
    django_user_model.objects.create_user("grace", "grace@example.com", "hopper 1906 cobol")
    page.goto(f"{asgi_server.url}/traces/")
    assert "/login/?next=/traces/" in page.url
    browser_login(page, asgi_server, "grace", "hopper 1906 cobol")
    assert page.locator(".account").inner_text().startswith("grace")
    page.goto(f"{asgi_server.url}/traces/")
    assert page.locator("h1").inner_text() == "Traces"
    page.click("text=Log out")
    page.wait_for_url(f"{asgi_server.url}/")
    assert page.locator(".account").inner_text() == "Log in"
