from django.urls import path

from backstop.incidents import views

urlpatterns = [
    path("status", views.status, name="status"),
    path("status.json", views.status, name="status-json"),
    path("status/banner.json", views.status, name="status-banner-json"),
    path("status/banner.js", views.status, name="status-banner-script"),
    path("desk/incidents/", views.incidents_page, name="desk-incidents"),
    path("desk/incidents/open", views.open_incident_page, name="desk-incidents-open"),
    path("desk/incidents/record/<int:incident_id>", views.incident_page, name="desk-incident-record"),
    path("desk/incidents/record/<int:incident_id>/update", views.post_update_page, name="desk-incident-update"),
    path("desk/incidents/record/<int:incident_id>/severity", views.severity_page, name="desk-incident-severity"),
    path("desk/incidents/record/<int:incident_id>/postmortem", views.postmortem_page,
         name="desk-incident-postmortem"),
    path("desk/incidents/record/<int:incident_id>/postmortem/redraft", views.redraft_page,
         name="desk-incident-redraft"),
    path("desk/incidents/record/<int:incident_id>/postmortem.md", views.postmortem_markdown,
         name="desk-incident-postmortem-md"),
    path("desk/incidents/record/<int:incident_id>/action-items", views.action_item_page,
         name="desk-incident-action-item"),
    path("desk/incidents/action-items/<int:item_id>/done", views.action_item_done_page,
         name="desk-action-item-done"),
    path("desk/incidents/capacity", views.capacity_page, name="desk-incidents-capacity"),
    path("desk/incidents/record/<int:incident_id>/amends", views.amends_page, name="desk-incident-amends"),
]
