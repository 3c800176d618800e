"""Errors a provider adapter raises, worded so they can be shown to support staff as they are."""


class ProviderError(Exception):
    """The provider refused or failed the call; retrying later may work."""


class ProviderTimeout(ProviderError):
    """The provider did not answer within the adapter's timeout."""
