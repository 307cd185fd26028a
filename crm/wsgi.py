import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.dev")
application = get_wsgi_application()

from crm.startup import freeze_loaded_objects  # noqa: E402  (needs the settings configured above)

freeze_loaded_objects()
