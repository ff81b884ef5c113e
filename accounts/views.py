from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import NewTokenForm
from accounts.models import ApiToken


@never_cache  # the answer to a create holds the secret: no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    """The user's personal API tokens; a POST makes one and shows its secret in this answer
    only (the page's script then turns the history entry into a plain GET, so a reload or
    going back shows the list, not the secret, and makes no second token)."""
    created, secret = None, None
    if request.method == "POST":
        form = NewTokenForm(request.POST)
        if form.is_valid():
            created, secret = ApiToken.issue(request.user, form.cleaned_data["name"],
                                             form.cleaned_data["scope"], form.expires_in_days())
            form = NewTokenForm()
    else:
        form = NewTokenForm()
    return render(request, "accounts/tokens.html", {
        "form": form,
        "created": created,
        "secret": secret,
        "tokens": ApiToken.objects.filter(user=request.user),
    }, status=201 if created else 200)


@login_required
@require_POST
def revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoked is None:
        token.revoke()
        messages.success(request, f"Revoked {token.name} ({token.prefix}…): it stops working "
                                  "at once.")
    return redirect("accounts:tokens")
