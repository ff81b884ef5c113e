"""Admin behaviour shared by the apps' admin modules."""


class ReceivedDataAdmin:
    """A ModelAdmin mixin for rows that only clients write (spans, events, tests, runs): staff can
    look and search, but not add or edit them, which would contradict what the client sent and
    the roll-ups and counters computed from it. `deletable` allows deleting whole rows (a run,
    with what cascades from it), never the parts of one."""

    deletable = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)
