from django.urls import path

from backstop.support import views

urlpatterns = [
    path("support/contact", views.contact_page, name="support-contact"),
    path("desk", views.desk_page, name="desk"),
    path("desk/search", views.desk_search, name="desk-search"),
    path("desk/cases/<int:case_id>", views.case_page, name="desk-case"),
    path("desk/cases/<int:case_id>/timeline", views.case_timeline, name="desk-case-timeline"),
    path("desk/cases/<int:case_id>/act", views.case_action, name="desk-case-action"),
    path("desk/cases/<int:case_id>/reply", views.case_reply, name="desk-case-reply"),
    path("desk/cases/<int:case_id>/note", views.case_note, name="desk-case-note"),
    path("desk/cases/<int:case_id>/presence", views.case_presence, name="desk-case-presence"),
    path("desk/incidents/<int:incident_id>", views.incident_page, name="desk-incident"),
    path("desk/inbound/attachments/<int:attachment_id>", views.inbound_attachment, name="desk-inbound-attachment"),
    # django-anymail's inbound webhooks, one per ESP (support.inbound_webhooks.INBOUND_ESPS; unconfigured: 404).
    path("inbound/<str:esp>/", views.inbound_webhook, name="inbound-webhook"),
]
