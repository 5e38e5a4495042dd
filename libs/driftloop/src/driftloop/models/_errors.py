"""What the model store raises. Every error is a :class:`ModelStoreError`."""

from __future__ import annotations


class ModelStoreError(Exception):
    """Base class of the model store's errors."""


class RefusedModel(ModelStoreError, ValueError):
    """A model file that is not XGBoost's native JSON or UBJ format (a pickle, say)."""


class VersionNotFound(ModelStoreError, LookupError):
    """No complete version of that name and id exists in the store."""

    def __init__(self, model_name: str, version: str) -> None:
        super().__init__(f"model {model_name!r} has no complete version {version!r}")
        self.model_name = model_name
        self.version = version


class VersionConflict(ModelStoreError):
    """Two different model files share a version id (a truncated-digest collision)."""

    def __init__(self, model_name: str, version: str, stored: str, given: str) -> None:
        super().__init__(
            f"model {model_name!r} version {version!r} holds sha256 {stored}, "
            f"not the given file's {given}; refusing to overwrite it"
        )
        self.model_name = model_name
        self.version = version
        self.stored = stored
        self.given = given


class DigestMismatch(ModelStoreError):
    """A stored file whose bytes no longer hash to the digest recorded for it."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__(f"{uri}: sha256 mismatch: expected {expected}, actual {actual}")
        self.uri = uri
        self.expected = expected
        self.actual = actual
