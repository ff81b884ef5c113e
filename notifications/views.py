from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from notifications.jobs import JOBS
from notifications.models import Channel, Delivery, Job, Notification
from notifications.services import send_test_notification

RECENT = 100


@login_required
def index(request):
    notifications = Notification.objects.prefetch_related(
        Prefetch("deliveries", queryset=Delivery.objects.select_related("channel").order_by("channel__name"))
    )[:RECENT]
    jobs = {job.name: job for job in Job.objects.all()}
    return render(request, "notifications/index.html", {
        "notifications": notifications,
        "channels": Channel.objects.all(),
        "jobs": [(scheduled, jobs.get(name)) for name, scheduled in sorted(JOBS.items())],
    })


@staff_member_required
@require_POST
def send_test(request, channel_id):
    channel = get_object_or_404(Channel, pk=channel_id)
    send_test_notification(channel, requested_by=request.user.get_username())
    messages.success(request, f"Test notification for {channel.name} queued; it shows below "
                              "with its delivery state once the worker has sent it.")
    return redirect("notifications:index")
