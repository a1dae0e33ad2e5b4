"""The visits service's own settings, read from VISITS_* environment variables."""

from __future__ import annotations

from pydantic import Field, HttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict


class VisitsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VISITS_", extra="ignore", case_sensitive=False)

    # Where citizens open the survey page: the public address of this service's /s/ routes.
    public_base_url: str = "http://127.0.0.1:8102"
    # How long an SMS survey link stays valid.
    survey_ttl_hours: int = Field(default=72, ge=1, le=24 * 30)
    # Name shown in the SMS signature (【…】), as registered with the SMS provider.
    sms_signature: str = "公安局"

    # SMS gateway: a provider's HTTP API in production; unset means the local sink, which
    # records each message in the visits database (development and tests).
    sms_gateway_url: HttpUrl | None = None
    sms_gateway_token: str | None = None
    sms_sender_id: str | None = None
    sms_timeout_seconds: float = 10.0

    # The service that owns a callback's contact, by who owns the item the callback follows.
    intake_url: str = "http://127.0.0.1:8101"
    complaints_url: str = "http://127.0.0.1:8103"
    # Bearer token for internal APIs (role `service`), issued by the bureau's identity
    # provider. Unset in development: the service signs its own with the dev key.
    service_token: str | None = None

    # How often the SMS dispatcher looks for callbacks to send, and how many per round.
    dispatch_interval_seconds: float = 5.0
    dispatch_batch: int = Field(default=50, ge=1, le=1000)
