from django.conf import settings
from django.urls import include, path

from backstop.accounts import views as accounts
from backstop.api import api
from backstop.billing import views as billing
from backstop.drafts import views as drafts
from backstop.web import local_times
from backstop.workspaces import views as workspaces

handler400 = "backstop.errors.bad_request"
handler403 = "backstop.errors.permission_denied"

urlpatterns = [
    path("", accounts.home, name="home"),
    path("signup", accounts.signup_page, name="signup"),
    path("login", accounts.login_page, name="login"),
    path("logout", accounts.logout_page, name="logout"),
    path("setup", accounts.setup_page, name="setup"),
    path("setup/retry", accounts.setup_retry, name="setup-retry"),
    path("app", accounts.app_page, name="app"),
    path("recover", accounts.recover_page, name="recover"),
    path("verify", accounts.verify_page, name="verify"),
    path("account/details", accounts.details_page, name="account-details"),
    path("verify/send-code", accounts.send_code_page, name="send-code"),
    path("verify/email/<str:token>", accounts.verify_email_link, name="verify-email"),
    path("signin/<str:token>", accounts.sign_in_link_page, name="sign-in-link"),
    path("checkout", billing.checkout_page, name="checkout"),
    path("checkout/<str:reference>", billing.outcome_page, name="checkout-outcome"),
    path("notes", workspaces.notes_page, name="notes"),
    path("notes/new", workspaces.new_note_page, name="new-note"),
    path("notes/<int:note_id>", workspaces.note_page, name="note"),
    path("drafts/drafts.js", drafts.script, name="drafts-script"),
    # At the root, so that the service worker may keep the copies of every editor page on the site.
    path("drafts-sw.js", drafts.service_worker, name="drafts-worker"),
    path("local-times.js", local_times.script_view, name="local-times-script"),
    path("api/", api.urls),
    path("", include("backstop.support.urls")),
    path("", include("backstop.monitoring.urls")),
    path("", include("backstop.incidents.urls")),
]

if settings.DEMO_PAGES:
    from backstop.demo import views as demo

    # The demo's home page is the tour, in front of the site's own home (which sends a visitor to sign up).
    urlpatterns.insert(0, path("", demo.tour_page, name="demo-tour"))
    urlpatterns += [
        path("demo/tour/<str:key>", demo.tour_start, name="demo-tour-start"),
        path("demo/tour-clear", demo.tour_clear, name="demo-tour-clear"),
        path("demo/mailbox", demo.mailbox_page, name="demo-mailbox"),
        path("demo/mailbox/<int:item_id>/answer", demo.mailbox_answer, name="demo-mailbox-answer"),
        path("demo/api/mailbox", demo.mailbox_api, name="demo-mailbox-api"),
        path("demo/faults", demo.faults_page, name="demo-faults"),
        path("demo/api/faults", demo.faults_api, name="demo-faults-api"),
    ]
