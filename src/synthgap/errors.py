"""The one exception type the command line turns into a single clear error line."""


class SynthgapError(Exception):
    """A user-facing problem (bad input, missing data, invalid spec). The CLI prints it without a traceback."""


class BadImageError(SynthgapError):
    """An image file that cannot be decoded."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot decode image {path}: {reason} (use --skip-bad to skip unreadable files)")
        self.path = path
