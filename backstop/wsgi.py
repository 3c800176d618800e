import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
django_application = get_wsgi_application()

from backstop.incidents.public import status_first  # noqa: E402  (its models load once Django is set up)

# /status answers from its file in front of Django, so with the database down too (backstop/incidents/public.py).
application = status_first(django_application)
