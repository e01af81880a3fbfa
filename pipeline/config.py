"""One typed settings object for the whole product, read by pydantic-settings.

Defaults work on a fresh clone (SQLite in the work directory, the shipped model and dictionaries).
Precedence, first wins: the command's flags > environment variables ``COMPLAINTS_<FIELD>`` (nested fields as
JSON, ``COMPLAINTS_COLUMNS='{"text": "内容"}'``, or one key at a time, ``COMPLAINTS_COLUMNS__TEXT=内容``) >
the TOML file given with ``--config`` > defaults. Secrets such as webhook tokens and database passwords
therefore never need to live in a file.
"""
from __future__ import annotations

import codecs
import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError,
                               TomlConfigSettingsSource)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
MODELS_DIR = PROJECT_ROOT / "models"

ENV_PREFIX = "COMPLAINTS_"
ENV_NESTED_DELIMITER = "__"
# sha256 of models/default/model.joblib: pinned here, apart from the artifact's own metadata, so that a
# swapped model folder is refused. Retraining the shipped model means updating this line.
SHIPPED_MODEL_SHA256 = "74bb1d2df1b1dc78b3727f1f10fa213b260bd983dc4de0d95297681354c0db2a"


class ConfigError(ValueError):
    """A settings or rules file is malformed; the message names the file and key."""


class ColumnMapping(BaseModel):
    """Which source column holds each field the product needs. Other columns are kept as metadata."""

    model_config = ConfigDict(extra="forbid")
    id: str = "id"
    text: str = "text"
    created_at: str = "created_at"
    channel: str = "channel"
    customer: str = "customer_id"  # optional: who complained, for the repeat-complaint escalation


class WebhookTarget(BaseModel):
    """Where a queue's tickets are POSTed. The bearer token is read from the environment variable named
    here, never from a file."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://", description="http(s) URL that receives one POST per ticket")
    token_env: str | None = Field(default=None, min_length=1, description="environment variable with the token")


class TrendSettings(BaseModel):
    """Cause-trend aggregation and spike alerts (the method is described in ``pipeline/reporting/trends.py``)."""

    model_config = ConfigDict(extra="forbid")
    period: Literal["day", "week", "month"] = "week"
    split_by: str = Field(default="channel", description="channel or any metadata column (store, product …)")
    window_days: int = Field(default=182, ge=1, description="the report covers this many days up to the last complaint")
    baseline_periods: int = Field(default=8, ge=1, description="trailing periods a period is compared with")
    min_baseline_periods: int = Field(default=3, ge=1, description="periods of history needed before testing")
    min_count: int = Field(default=10, ge=1, description="no alert below this many complaints")
    min_ratio: float = Field(default=1.3, ge=1.0, description="no alert below this rise over the baseline")
    alpha: float = Field(default=0.01, gt=0, lt=1, description="false discovery rate per period (Benjamini–Hochberg)")
    top_terms: int = Field(default=5, ge=1)
    examples_per_cause: int = Field(default=3, ge=0)
    language: Literal["zh", "en"] = Field(default="zh", description="of the report: Chinese (zh) or English (en)")


# Metadata columns that name a person or a way to reach one (compared without case, spaces, - and _)
PERSONAL_COLUMNS = (
    "customer_id", "customer", "customer_no", "customer_name", "member_id", "member_no", "user_id", "name",
    "contact", "phone", "mobile", "tel", "telephone", "phone_number", "email", "address", "id_card", "id_number",
    "card_no", "card_number", "bank_card", "qq", "wechat", "weixin",
    "客户", "客户编号", "客户号", "客户id", "客户姓名", "会员号", "用户id", "姓名", "联系人", "电话", "手机", "手机号",
    "联系电话", "联系方式", "邮箱", "地址", "身份证", "身份证号", "证件号", "银行卡号", "卡号", "qq号", "微信", "微信号",
)


def column_key(name: str) -> str:
    """Column names compare without case, spaces, hyphens and underscores: 'Customer ID' = 'customer_id'."""
    return "".join(ch for ch in str(name).casefold() if ch not in " _-")


# The --config file of the Settings being built: pydantic-settings builds its sources from the class alone.
_settings_file: ContextVar[Path | None] = ContextVar("settings_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", env_prefix=ENV_PREFIX,
                                      env_nested_delimiter=ENV_NESTED_DELIMITER)

    work_dir: Path = Field(default=PROJECT_ROOT / "var", description="database, outputs, reports")
    # SecretStr: a password in the URL stays out of reprs, logs and the parameters Prefect records
    database_url: SecretStr | None = Field(default=None, description="SQLAlchemy URL; default SQLite in work_dir")
    model_path: Path = MODELS_DIR / "default" / "model.joblib"
    trusted_models: list[str] = Field(
        default=[SHIPPED_MODEL_SHA256],
        description="sha256 of the model artifacts the product may load (`complaints train` prints a new one's)")
    classifier: Literal["model", "lexicon"] = "model"
    lexicon_path: Path = DATA_DIR / "lexicon" / "cause_lexicon.toml"
    user_dict_path: Path = DATA_DIR / "dictionaries" / "user_dict.txt"
    stopwords_path: Path = DATA_DIR / "dictionaries" / "stopwords.txt"
    routing_path: Path = DATA_DIR / "routing" / "routing.toml"
    remedies_path: Path = DATA_DIR / "routing" / "remedies.toml"
    escalation_path: Path = DATA_DIR / "routing" / "escalation.toml"
    columns: ColumnMapping = ColumnMapping()
    encoding: str | None = Field(default=None, description="of CSV/TSV/TXT/JSONL sources; default: detected")
    sheet: str | None = Field(default=None, description="the one sheet of an Excel source to read; default: every sheet")
    # rjieba (jieba-rs: jieba's dictionary and algorithm in Rust) classifies ~1.7× faster than jieba, the
    # reference engine, and segments real texts alike (tests/test_segment.py holds it to that).
    segmenter_engine: Literal["jieba", "rjieba"] = "rjieba"
    batch_size: int = Field(default=5000, ge=1, description="rows per transaction and per hand-off to the workers")
    workers: int = Field(default=0, ge=0, description="classification processes; 0 = one per core")
    # A Dask scheduler whose workers classify the batches (pipeline/model/cluster.py); empty: this machine
    cluster: str = Field(default="",
                         description="Dask scheduler address, e.g. tcp://scheduler:8786; empty = no cluster")
    quarantine_failure_share: float = Field(
        default=0.9, gt=0, le=1,
        description="a run fails (naming the mapping to fix) when this share of its rows is quarantined")
    max_text_chars: int = Field(
        default=2000, ge=50,
        description="longer texts are stored whole but truncated to this length for the model (flagged)",
    )
    timezone: str = "Asia/Shanghai"
    nightly_cron: str = "0 2 * * *"
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = Field(default=4, ge=1, description="HTTP attempts per ticket within one run")
    webhook_backoff_seconds: float = Field(default=1.0, ge=0, description="first retry delay; doubles each retry")
    webhooks: dict[str, WebhookTarget] = Field(
        default={}, description="queue → webhook; the key '*' serves every queue without its own entry")
    trends: TrendSettings = TrendSettings()
    ticket_api_token_env: str = Field(
        default="COMPLAINTS_TICKET_API_TOKEN", min_length=1,
        description="environment variable holding the bearer token of `complaints tickets serve-updates`")
    personal_columns: list[str] = Field(
        default=list(PERSONAL_COLUMNS),
        description="metadata columns stored only as a customer reference (keyed hash), never split by in reports")
    pseudonym_key: SecretStr | None = Field(
        default=None, description="key of the customer references; default: a random key in work_dir/pseudonym.key")
    # sources the way nightly exports arrive, and delivery at volume (issue 12 items 2 and 3)
    source_key_column: str | None = Field(
        default=None, description="a database source is read in order of this column; default: columns.id")
    webhook_concurrency: int = Field(default=8, ge=1, description="webhook POSTs in flight at once")
    webhook_max_wait_seconds: float = Field(
        default=60.0, ge=0, description="longest Retry-After waited; a receiver asking more is tried next run")
    keep_raw_rows: bool = Field(
        default=False, description="also store complaint texts and quarantined rows unmasked (audits only)")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (keyword arguments) > environment > settings file > defaults; no .env or secrets folder."""
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_settings_file.get())

    @model_validator(mode="after")
    def _no_report_by_personal_column(self) -> "Settings":
        personal = {column_key(c) for c in [*self.personal_columns, self.columns.customer]}
        if column_key(self.trends.split_by) in personal:
            raise ValueError(f"trends.split_by {self.trends.split_by!r} is a personal column (personal_columns): "
                             "reports are not split by customer")
        return self

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str | None) -> str | None:
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError as exc:
                raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, gb18030, big5)") from exc
        return encoding

    @property
    def resolved_database_url(self) -> str:
        """The URL to connect with, password included: never print or store it (``hide_password``)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.work_dir / 'complaints.db'}"

    @property
    def outputs_dir(self) -> Path:
        return self.work_dir / "outputs"

    @property
    def tickets_dir(self) -> Path:
        return self.outputs_dir / "tickets"

    @property
    def reports_dir(self) -> Path:
        return self.work_dir / "reports"

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)


_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^/\s:@]*:)[^/\s]*(@)")  # up to the authority's last @


def hide_password(text: str) -> str:
    """A database URL rendered by SQLAlchemy with its password hidden (***); in any other text (an error
    message) each URL's password is replaced the same way. File paths come back unchanged."""
    if "://" in text and not any(ch.isspace() for ch in text):
        from sqlalchemy.engine import make_url

        try:
            return make_url(text).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: hide what looks like a password
            pass
    return _URL_PASSWORD.sub(r"\1***\2", text)


def has_password(url: str) -> bool:
    return hide_password(url) != url


def load_settings(config_path: Path | str | None = None, **overrides) -> Settings:
    """Settings from the file ``config_path`` (optional), the environment and ``overrides`` (a command's flags;
    None means "not given"), merged field by field, nested fields key by key, in the precedence above."""
    path = Path(config_path) if config_path is not None else None
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: settings file not found")
    token = _settings_file.set(path)
    try:
        return Settings(**{name: value for name, value in overrides.items() if value is not None})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except SettingsError as exc:  # an environment variable that should hold JSON does not
        field = re.search(r'field "(\w+)"', str(exc))
        name = ENV_PREFIX + (field.group(1).upper() if field else "…")
        raise ConfigError(f"{name}: not valid JSON ({exc.__cause__ or exc}); give e.g. "
                          f"{ENV_PREFIX}COLUMNS='{{\"text\": \"内容\"}}' or {ENV_PREFIX}COLUMNS__TEXT=内容") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where_set(err['loc'], path)}: " + (f"{'.'.join(str(p) for p in err['loc'])}: " if err["loc"] else "")
            + err["msg"] for err in exc.errors())
        raise ConfigError(problems) from exc
    finally:
        _settings_file.reset(token)


def _where_set(location: tuple, settings_file: Path | None) -> str:
    """The environment variable a bad value came from if one sets its field, else the settings file."""
    if location:
        variable = ENV_PREFIX + str(location[0]).upper()
        if any(name.upper() == variable or name.upper().startswith(variable + ENV_NESTED_DELIMITER)
               for name in os.environ):
            return variable
    return str(settings_file) if settings_file else "settings"
