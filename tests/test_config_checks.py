"""Bad configuration values are one clear line before anything is built: overrides of the
wrong type name the key and the expected type; unwritable output folders name the key and path."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from explainbench.utils.validate import SCHEMA, ConfigTypeError, type_errors

from .helpers import CONF, TINY_DATA, compose_cfg, run_cli, run_unwrapped


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("trainer.max_epochs=abc", 'trainer.max_epochs="abc" (str): expected an integer'),
        ("method.optimizer.lr=abc", 'method.optimizer.lr="abc" (str): expected a number'),
        ("data.batch_size=1.5", "data.batch_size=1.5 (float): expected an integer"),
        ("trainer.max_epochs=true", "trainer.max_epochs=true (bool): expected an integer"),
    ],
)
def test_override_of_wrong_type_names_key_and_type(override, needle, tmp_path):
    cfg = compose_cfg([*TINY_DATA, override], tmp_path)
    with pytest.raises(ConfigTypeError) as err:
        run_unwrapped(cfg)
    assert needle in str(err.value)
    assert not list(tmp_path.iterdir()), "nothing may be built before the check"


@pytest.mark.slow
def test_wrong_type_on_the_cli_is_one_line(tmp_path):
    proc = run_cli("train.py", ["trainer.max_epochs=abc", *TINY_DATA], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert (
        'Error: ConfigTypeError: Wrong type in the config: trainer.max_epochs="abc"' in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_evaluate_checks_types_too(tmp_path):
    from explainbench.evaluate import run as evaluate_run

    cfg = compose_cfg(
        ["ckpt_path=/nonexistent.ckpt", "data.batch_size=abc"], tmp_path, "evaluate.yaml"
    )
    with pytest.raises(ConfigTypeError, match='data.batch_size="abc"'):
        evaluate_run(cfg)


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("overrides", [[], *([f"experiment={name}"] for name in EXPERIMENTS)])
def test_shipped_configs_fit_the_schema(overrides, tmp_path):
    assert type_errors(compose_cfg(overrides, tmp_path)) == []


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["data=celeba", "data.aligned=yes"], 'data.aligned="yes" (str): expected true/false'),
        (
            ["data=celeba", "data.target_attribute=1"],
            "data.target_attribute=1 (int): expected a string (or null)",
        ),
        (
            ["data=celeba", "data.landmark_split=[a]"],
            'data.landmark_split=["a"] (list): expected a string (or null)',
        ),
        (
            ["data=inaturalist", "data.val_fraction=abc"],
            'data.val_fraction="abc" (str): expected a number',
        ),
    ],
)
def test_data_keys_of_wrong_type_name_key_and_type(overrides, needle, tmp_path):
    assert needle in "; ".join(type_errors(compose_cfg(overrides, tmp_path)))


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "data").glob("*.yaml")))
def test_shipped_data_configs_fit_the_schema(name, tmp_path):
    assert type_errors(compose_cfg([f"data={name}"], tmp_path)) == []


def test_schema_allows_int_for_number_and_null_where_optional(tmp_path):
    cfg = compose_cfg(["method.optimizer.lr=1", "trainer.max_epochs=null", "seed=null"], tmp_path)
    assert type_errors(cfg) == []
    assert "trainer.max_epochs" in SCHEMA


def test_max_epochs_minus_one_without_a_limit_warns(tmp_path, caplog):
    # a bad data variant stops the run right after the start-up checks
    stop = ["data.variant=triple99"]
    with (
        caplog.at_level(logging.WARNING, logger="explainbench"),
        pytest.raises(ValueError, match="triple99"),
    ):
        run_unwrapped(compose_cfg(["trainer.max_epochs=-1", *stop], tmp_path))
    assert "trainer.max_epochs=-1 trains forever" in caplog.text
    caplog.clear()
    for limit in ("+trainer.max_steps=100", "+trainer.max_time=00:01:00:00"):
        with (
            caplog.at_level(logging.WARNING, logger="explainbench"),
            pytest.raises(ValueError, match="triple99"),
        ):
            run_unwrapped(compose_cfg(["trainer.max_epochs=-1", limit, *stop], tmp_path))
    assert "trains forever" not in caplog.text


BAD_DIR = "/proc/explainbench_unwritable"  # /proc refuses new folders, even to root


@pytest.mark.parametrize(
    ("script", "args", "log_dir", "key"),
    [
        ("train.py", ["debug=fdr", *TINY_DATA], BAD_DIR, "paths.log_dir"),
        pytest.param(
            "train.py",
            ["-m", "seed=1,2", "debug=fdr", *TINY_DATA],
            BAD_DIR,
            "paths.log_dir",
            marks=pytest.mark.slow,
        ),
        (
            "train.py",
            [f"paths.output_dir={BAD_DIR}", "debug=fdr", *TINY_DATA],
            None,
            "paths.output_dir",
        ),
        pytest.param(
            "evaluate.py",
            ["ckpt_path=/nonexistent.ckpt"],
            BAD_DIR,
            "paths.log_dir",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_unwritable_output_folder_is_one_line(script, args, log_dir, key, tmp_path):
    # run_cli sets paths.log_dir to its tmp_path argument
    proc = run_cli(script, args, Path(log_dir) if log_dir else tmp_path, timeout=120)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert f"{key}={BAD_DIR} is not a writable folder" in errors[0]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
