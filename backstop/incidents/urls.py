from django.urls import path

from backstop.incidents import views

urlpatterns = [
    path("status", views.status, name="status"),
    path("status.json", views.status, name="status-json"),
    path("status/banner.js", views.status, name="status-banner-script"),
    path("desk/incidents/", views.incidents_page, name="desk-incidents"),
    path("desk/incidents/open", views.open_incident_page, name="desk-incidents-open"),
    path("desk/incidents/record/<int:incident_id>", views.incident_page, name="desk-incident-record"),
    path("desk/incidents/record/<int:incident_id>/update", views.post_update_page, name="desk-incident-update"),
    path("desk/incidents/record/<int:incident_id>/severity", views.severity_page, name="desk-incident-severity"),
]
