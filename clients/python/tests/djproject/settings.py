"""Settings of the minimal Django project the integration tests run.

The shardcast URL is known only once the test server started, so it comes from the
environment (the ``django_project`` fixture sets it before ``django.setup()``); everything else
is what a real project would write.
"""

import os

SECRET_KEY = "django-insecure-test-only"
DEBUG = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "channels"]
ROOT_URLCONF = "djproject.urls"
ASGI_APPLICATION = "djproject.asgi.application"
DATABASES: dict = {}
USE_TZ = True

SHARDCAST_URL = os.environ["SHARDCAST_TEST_URL"]
SHARDCAST_GROUP_ROOMS = {"flight_room_{id}": "tracker/{id}"}
SHARDCAST_TIMEOUT = 30  # the test machine may be overloaded

CHANNEL_LAYERS = {
    # What a project moving its fan-out to shardcast writes: group_send publishes.
    "default": {"BACKEND": "shardcast.django.layer.ShardcastChannelLayer"},
    # During a migration: consumers still served by Django keep an in-memory (or Redis) layer
    # for their own traffic, and group_send reaches both them and shardcast's browsers.
    "mixed": {
        "BACKEND": "shardcast.django.layer.ShardcastChannelLayer",
        "CONFIG": {
            "delegate": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
            "delegate_group_send": True,
        },
    },
}
