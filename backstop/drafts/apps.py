from django.apps import AppConfig


class DraftsConfig(AppConfig):
    name = "backstop.drafts"
    label = "drafts"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.runtime import registry

        # Drafts nobody touched for DRAFT_KEEP_DAYS go; the supervisor of every process that runs workflows runs it.
        registry.register_periodic("draft-cleanup", _delete_expired_drafts,
                                   every_seconds=lambda: settings.DRAFT_CLEANUP_SECONDS)


def _delete_expired_drafts() -> None:
    from backstop.drafts.services import delete_expired_drafts

    delete_expired_drafts()
