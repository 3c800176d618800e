from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "backstop.demo"
    label = "demo"
    verbose_name = "Demo: fault injection and local mailbox"

    def ready(self) -> None:
        from backstop.demo.faults import maybe_with_faults
        from backstop.lib.adapters import install_adapter_wrapper

        # Installed in every process: maybe_with_faults reads FAULT_INJECTION on each call (the tests turn it on
        # after start-up), and with it off it hands the adapter back untouched, as production needs.
        install_adapter_wrapper("faults", maybe_with_faults)
