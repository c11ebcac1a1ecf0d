"""Python SDK for Lineage: Datanets, fine-tunes, models, receipts and earnings over the REST API, and chat over
the OpenAI-compatible `/v1`. The `lineage` command line (`lineage_client.cli`) is built on it."""

__version__ = "0.1.0"

from ._waiting import Backoff  # noqa: E402
from .amounts import base_units_to_open, open_to_base_units  # noqa: E402
from .client import Lineage  # noqa: E402
from .errors import (  # noqa: E402
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidAmountError,
    JobFailedError,
    LineageConnectionError,
    LineageError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    WaitInterrupted,
    WaitTimeoutError,
)
from .fine_tunes import FineTuneSpec  # noqa: E402
from .types import (  # noqa: E402
    BaseModel,
    ChatAnswer,
    Contribution,
    Datanet,
    DatanetVersion,
    Download,
    Earning,
    Earnings,
    FineTune,
    Me,
    ModelVersion,
    Receipt,
    RowError,
)

__all__ = [
    "ApiError", "AuthenticationError", "Backoff", "BadRequestError", "BaseModel", "ChatAnswer", "ConfigurationError",
    "ConflictError", "Contribution", "Datanet", "DatanetVersion", "Download", "Earning", "Earnings", "FineTune",
    "FineTuneSpec", "IntegrityError", "InvalidAmountError", "JobFailedError", "Lineage", "LineageConnectionError",
    "LineageError", "Me", "ModelVersion", "NotFoundError", "PermissionDeniedError", "RateLimitError", "Receipt",
    "RowError", "ServerError", "WaitInterrupted", "WaitTimeoutError", "base_units_to_open", "open_to_base_units",
]
