"""Errors a user can act on. The CLI prints them as one line instead of a traceback."""


class MoeMloraError(Exception):
    """Base of every error raised for bad input or unavailable resources."""


class DataError(MoeMloraError):
    """Malformed, inconsistent or missing data; the message names the file and, where known, line and column."""


class DataUnavailableError(DataError):
    """A dataset is not on disk and could not be downloaded."""


class ConfigError(MoeMloraError):
    """An option or configuration value that cannot work."""
