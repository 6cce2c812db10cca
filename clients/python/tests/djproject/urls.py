from django.urls import path

from . import views

urlpatterns = [
    path("flights/<str:flight_id>/position", views.position),
    path("flights/<str:flight_id>/position-direct", views.position_direct),
]
