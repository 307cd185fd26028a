"""`makemessages` that also extracts `_t("...")`: modules that need both the lazy and the immediate
gettext import `gettext_lazy as _` and `gettext as _t`, and xgettext only knows the standard names."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=_t"]
