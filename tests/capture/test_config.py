import pytest
import yaml

from provwh.core import config
from provwh.core.config import SettingsError, load_settings


def test_defaults_without_a_file():
    s = load_settings(env={})
    assert s.path is None
    assert s.get("project.db_flush_mode") == "online"
    assert s.get("project.dump_buffer.enabled") is True
    assert s.get("project.dump_buffer.path") == "flowcept_buffer.jsonl"
    assert s.get("buffer.format") == "jsonl"
    assert s.duckdb_enabled is True and s.duckdb_path == "provwh.duckdb"
    assert s.postgres_enabled is False and s.postgres_url is None


def test_file_with_flowcept_keys_and_unknown_sections(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "project:\n  db_flush_mode: offline\n  dump_buffer:\n    path: x.jsonl\n"
        "mq:\n  host: localhost\n"  # a Flowcept key we do not use: ignored
        "telemetry_capture:\n  gpu: ~\n  cpu: true\n"
        "buffer:\n  format: parquet\n  flush_size: 50\n  flush_interval: 0.5\n"
    )
    s = load_settings(str(path), env={})
    assert s.get("project.db_flush_mode") == "offline"
    assert s.get("project.dump_buffer.path") == "x.jsonl"
    assert s.get("telemetry_capture.gpu") is True  # ~ means default
    assert (s.get("buffer.format"), s.get("buffer.flush_size")) == ("parquet", 50)
    assert s.get("buffer.flush_interval") == 0.5


@pytest.mark.parametrize(
    "text, message",
    [
        ("buffer:\n  format: xml\n", r"buffer.format: expected one of jsonl, parquet, got 'xml'"),
        ("buffer:\n  flush_size: -3\n", r"buffer.flush_size: expected a positive integer"),
        ("buffer:\n  flush_interval: soon\n", r"buffer.flush_interval: expected a positive"),
        ("project:\n  dump_buffer:\n    enabled: maybe\n", r"project.dump_buffer.enabled"),
        ("- a\n- b\n", r"mapping at its top level"),
        ("a: [\n", r"not valid YAML"),
    ],
)
def test_invalid_values_name_the_key(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(str(path), env={})


def test_environment_overrides_and_flowcept_variable(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("buffer:\n  format: parquet\n")
    s = load_settings(
        env={
            "FLOWCEPT_SETTINGS_PATH": str(path),
            "PROVWH_DUCKDB_PATH": "/data/p.duckdb",
            "PROVWH_FLUSH_SIZE": "7",
        }
    )
    assert s.path == str(path)
    assert s.get("buffer.format") == "parquet"
    assert s.duckdb_path == "/data/p.duckdb"
    assert s.get("buffer.flush_size") == 7
    with pytest.raises(SettingsError, match=r"from \$PROVWH_FLUSH_SIZE"):
        load_settings(env={"PROVWH_FLUSH_SIZE": "many"})
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings(env={"PROVWH_SETTINGS_PATH": str(tmp_path / "none.yaml")})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@h:5/db",
        "postgresql+psycopg://u:p@h:5/db",
        "postgres://u:p@h:5/db",
    ],
)
def test_postgres_url_forms_enable_postgres(url):
    s = load_settings(env={"PROVWH_POSTGRES_URL": url})
    assert s.postgres_enabled is True
    assert s.postgres_url == "postgresql+psycopg://u:p@h:5/db"


def test_bad_postgres_url_is_refused_without_leaking_password():
    with pytest.raises(SettingsError) as err:
        load_settings(env={"PROVWH_POSTGRES_URL": "mysql://u:secretpw@h/db"})
    assert "secretpw" not in str(err.value)


def test_snapshot_redacts(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("databases:\n  postgres:\n    url: postgresql://bob:pw123@db:5432/prov\n")
    snap = load_settings(str(path), env={}).snapshot()
    assert snap["databases"]["postgres"]["url"] == "postgresql://bob:REDACTED@db:5432/prov"
    assert "pw123" not in repr(snap)
    assert snap["settings_path"] == str(path)


def test_get_settings_is_cached_until_reload(settings_file):
    first = config.get_settings()
    assert config.get_settings() is first
    settings_file("buffer:\n  flush_size: 3\n")
    assert config.get_settings().get("buffer.flush_size") == 3


FLOWCEPT_ADAPTERS = """\
adapters:
  broker_mqtt:
    kind: broker
    host: localhost
    queues: ["#"]
  mlflow:
    kind: mlflow
    file_path: mlflow.db
    log_params: ['*']
    log_metrics: ['*']
    watch_interval_sec: 1
  tensorboard:
    kind: tensorboard
    file_path: tensorboard_events
    log_tags: ['scalars', 'hparams', 'tensors']
    log_metrics: ['accuracy']
    watch_interval_sec: 5
  dask:
    kind: dask
    worker_should_get_input: true
"""


def test_flowcept_adapters_section_loads_without_warnings(tmp_path):
    """Flowcept 1.0.3's sample settings, adapters section: the mlflow and tensorboard keys are
    read, the others ignored without a warning."""
    path = tmp_path / "s.yaml"
    path.write_text(FLOWCEPT_ADAPTERS)
    s = load_settings(str(path), env={})
    assert s.warnings == []
    assert [s.get(f"adapters.mlflow.{k}") for k in ("file_path", "watch_interval_sec")] == [
        "mlflow.db",
        1.0,
    ]
    assert s.get("adapters.mlflow.log_params") == ["*"]
    assert s.get("adapters.tensorboard.log_tags") == ["scalars", "hparams", "tensors"]
    assert s.get("adapters.tensorboard.log_metrics") == ["accuracy"]
    assert s.get("adapters.tensorboard.watch_interval_sec") == 5.0


def test_a_list_setting_takes_one_string_and_refuses_others(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("adapters:\n  tensorboard:\n    log_metrics: val_acc\n")
    assert load_settings(str(path), env={}).get("adapters.tensorboard.log_metrics") == ["val_acc"]
    for bad in ("[acc, 3]", "{a: 1}", "['']"):
        path.write_text(f"adapters:\n  tensorboard:\n    log_metrics: {bad}\n")
        with pytest.raises(SettingsError) as err:
            load_settings(str(path), env={})
        assert str(err.value) == (
            f"adapters.tensorboard.log_metrics: expected a list of non-empty strings, got "
            f"{yaml.safe_load(bad)!r} (in {path})"
        )
