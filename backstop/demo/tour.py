"""The demo's home page is a tour: each scenario sets the providers' faults (the fault switches of the fault panel)
and opens the page it starts from. A registry; its test checks every entry is complete."""

from __future__ import annotations

from dataclasses import dataclass

from backstop.demo import messages
from backstop.demo.faults import PROVIDERS, validate_faults
from backstop.demo.models import FaultMode, FaultSetting

# The staff sign-in `backstop demo` seeds (and prints): the desk scenario needs it.
DEMO_STAFF_EMAIL = "staff@backstop.localhost"
DEMO_STAFF_PASSWORD = "backstop-demo-staff"


@dataclass(frozen=True)
class Scenario:
    key: str
    faults: dict[str, str]  # the providers it breaks; every other provider is set back to ok
    opens: str  # the page the button opens (a path of the site)
    also: tuple[tuple[str, str], ...]  # (label, path): the pages to open next
    staff: bool = False  # the page it opens is the desk's

    @property
    def texts(self) -> dict[str, object]:
        return messages.SCENARIO_TEXTS[self.key]

    @property
    def title(self) -> str:
        return str(self.texts["title"])

    def modes(self) -> dict[str, str]:
        """Every provider's mode: the scenario's faults, the rest ok (scenarios never add up)."""
        return {provider: self.faults.get(provider, FaultMode.OK) for provider in PROVIDERS}


SCENARIOS: dict[str, Scenario] = {s.key: s for s in (
    Scenario(key="half_failed_signup", faults={"email": FaultMode.TIMEOUT, "workspace": FaultMode.ERROR},
             opens="/signup", also=(("Mailbox", "/demo/mailbox"), ("Fault panel", "/demo/faults"))),
    Scenario(key="paid_but_crashed_checkout", faults={"payments": FaultMode.CRASH_AFTER_CHARGE},
             opens="/checkout", also=(("Mailbox", "/demo/mailbox"),)),
    Scenario(key="outage_from_the_desk", faults={"workspace": FaultMode.ERROR},
             opens="/desk", also=(("Sign up (another browser)", "/signup"), ("Status page", "/status"),
                                  ("Incidents", "/desk/incidents/")), staff=True),
)}


def current_faults() -> dict[str, str]:
    stored = FaultSetting.objects.as_dict()  # one query: the demo's header asks on every page
    return {provider: stored.get(provider, FaultMode.OK) for provider in PROVIDERS}


def start_scenario(*, key: str) -> Scenario:
    """Set the scenario's faults (KeyError for an unknown one)."""
    scenario = SCENARIOS[key]
    modes = scenario.modes()
    validate_faults(modes)
    FaultSetting.objects.set_modes(modes)
    return scenario


def clear_faults() -> None:
    FaultSetting.objects.set_modes({provider: FaultMode.OK for provider in PROVIDERS})


def faults_text(modes: dict[str, str]) -> str:
    broken = [f"{provider}={mode}" for provider, mode in modes.items() if mode != FaultMode.OK]
    return ", ".join(broken) or messages.TOUR_ALL_OK
