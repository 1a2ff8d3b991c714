"""The one validator (`receiver.validation`) on dataclasses of its own: types, ranges, the `${...}` forms, `*_file`
keys, and secrets that no error, dump or repr shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from receiver.validation import (
    ConfigError,
    Duration,
    OptionError,
    Source,
    build,
    dump,
    each,
    expand,
    secrets_in,
    setting,
)

SECRET = "hunter2-but-longer-than-that"


@dataclass(frozen=True)
class Inner:
    name: str = setting(example="e.g. name = 'x'")
    size: int = setting(1, minimum=1, maximum=10)


@dataclass(frozen=True)
class Options:
    port: int = setting(8080, minimum=0, maximum=65535)
    ratio: float = 0.5
    enabled: bool = True
    timeout: Duration = setting(30.0, positive=True)
    mode: Literal["fast", "slow"] = "fast"
    folder: Path = Path("data")
    names: tuple[str, ...] = ()
    token: str = setting("", secret=True)
    tokens: tuple[str, ...] = setting((), secret=True)
    headers: dict[str, str] = setting(default_factory=dict, secret=True)
    inner: Inner | None = None
    items: tuple[Inner, ...] = ()
    limit: int | None = None
    set_by_program: str = setting("", key=False)

    def __post_init__(self) -> None:
        if self.mode == "slow" and self.timeout < 60:
            raise OptionError("timeout", "must be at least 60s when mode is slow")


def read(raw: dict[str, Any], environ: dict[str, str] | None = None, base_dir: Path = Path("/cfg")) -> Options:
    return build(Options, raw, "section", Source(environ or {}, base_dir))


def problem(raw: dict[str, Any], environ: dict[str, str] | None = None, base_dir: Path = Path("/cfg")) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        read(raw, environ, base_dir)
    assert "\n" not in str(caught.value)
    return caught.value


def test_defaults_and_good_values() -> None:
    assert read({}) == Options(folder=Path("/cfg/data"))
    options = read(
        {
            "port": 9000,
            "ratio": 2,
            "enabled": False,
            "timeout": "1m30s",
            "mode": "fast",
            "folder": "/abs",
            "names": ["a", "b"],
            "inner": {"name": "x", "size": 3},
            "items": [{"name": "y"}],
            "limit": 5,
        }
    )
    assert (options.port, options.ratio, options.enabled, options.timeout) == (9000, 2.0, False, 90.0)
    assert (options.folder, options.names, options.limit) == (Path("/abs"), ("a", "b"), 5)
    assert options.inner == Inner("x", 3) and options.items == (Inner("y"),)


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"port": "80"}, "section.port", "got the string '80': write it without quotes"),
        ({"port": 70000}, "section.port", "at most 65535, got 70000"),
        ({"port": True}, "section.port", "a whole number, got a boolean"),
        ({"ratio": "x"}, "section.ratio", "must be a number, got a string 'x'"),
        ({"timeout": "soon"}, "section.timeout", '"30s"'),
        ({"timeout": "0s"}, "section.timeout", "more than zero, got '0s'"),
        ({"mode": "medium"}, "section.mode", "one of 'fast', 'slow'; got 'medium'"),
        ({"mode": "slow"}, "section.timeout", "at least 60s when mode is slow"),
        ({"names": "a"}, "section.names", "must be a list"),
        ({"names": ["a", 2]}, "section.names[1]", "must be a string"),
        ({"folder": ""}, "section.folder", "must name a file or folder"),
        ({"inner": {"size": 2}}, "section.inner.name", "is required in [section.inner] (e.g. name = 'x')"),
        ({"items": [{"name": "y", "size": 0}]}, "section.items[0].size", "at least 1"),
        ({"items": {"name": "y"}}, "section.items", "array of tables"),
        ({"colour": "red"}, "section.colour", "unknown key in [section]: check the spelling; it takes port, ratio"),
        ({"set_by_program": "x"}, "section.set_by_program", "unknown key"),
        ({"token": "a", "token_file": "/f"}, "section.token_file", "and token are both set"),
    ],
)
def test_each_problem_names_the_key_and_says_what_to_do(raw: dict[str, Any], key: str, words: str) -> None:
    error = problem(raw)
    assert error.key == key
    assert words in error.problem


@pytest.mark.parametrize(
    "raw",
    [
        {"token": 987654321},
        {"token": ["987654321"]},
        {"tokens": "987654321"},
        {"tokens": [987654321]},
        {"headers": {"Authorization": 987654321}},
        {"token": "$987654321"},
        {"token": "${987654321}"},
        {"token": "$TOKEN_987654321"},
        {"token": "${987654321"},
    ],
)
def test_no_error_shows_a_secrets_value(raw: dict[str, Any]) -> None:
    assert "987654321" not in str(problem(raw))


def test_environment_references() -> None:
    environ = {"NAME": "value", "EMPTY": ""}
    assert expand("a ${NAME} b", "k", environ) == ("a value b", True)
    assert expand("$${NAME} costs $$5", "k", environ) == ("${NAME} costs $5", False)
    assert expand("${UNSET:-fallback}/${EMPTY:-also}/${NAME:-no}", "k", environ) == ("fallback/also/value", True)
    assert expand("${NAME:?say why}", "k", environ) == ("value", True)
    assert expand("${EMPTY}", "k", environ) == ("", True)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("${UNSET}", "environment variable UNSET is not set (referenced as ${UNSET})"),
        ("${EMPTY:?set it to the webhook code}", "EMPTY is not set or empty: set it to the webhook code"),
        ("$ALTINN_RECEIVER_SECRET", "$ALTINN_RECEIVER_SECRET is not expanded here: write ${ALTINN_RECEIVER_SECRET}"),
        ("${VAR", 'has "${" without its closing "}"'),
        ("${}", '"${}" is not an environment reference'),
        ("${VAR:=x}", '"${VAR:=x}" is not an environment reference'),
        ("costs 5$", 'has a "$" that starts no environment reference'),
    ],
)
def test_any_other_dollar_is_an_error_naming_the_key(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        expand(text, "section.key", {"EMPTY": ""})
    assert caught.value.key == "section.key"
    assert words in caught.value.problem
    assert "$$ for a literal $" in caught.value.problem or "not set" in caught.value.problem


def test_typed_keys_accept_strings_from_the_environment() -> None:
    environ = {"PORT": "9090", "RATIO": "0.25", "ON": "false", "LATER": "2m", "BAD": "eighty"}
    options = read(
        {"port": "${PORT}", "ratio": "${RATIO}", "enabled": "${ON}", "timeout": "${LATER}", "limit": "${NO:-3}"},
        environ,
    )
    assert (options.port, options.ratio, options.enabled, options.timeout, options.limit) == (9090, 0.25, False, 120, 3)
    error = problem({"port": "${BAD}"}, environ)
    assert (error.key, error.problem) == ("section.port", "must be a whole number; the environment gave 'eighty'")


def test_secrets_come_from_files_without_one_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET + "\n\n")
    (tmp_path / "tokens").write_text("first\n\nsecond\r\n")
    (tmp_path / "authorization").write_text("Bearer abc\n")
    options = read(
        {
            "token_file": "token",
            "tokens_file": "${DIR}/tokens",
            "headers_file": {"Authorization": str(tmp_path / "authorization")},
        },
        {"DIR": str(tmp_path)},
        base_dir=tmp_path,
    )
    assert options.token == SECRET + "\n"
    assert options.tokens == ("first", "second")
    assert options.headers == {"Authorization": "Bearer abc"}


def test_a_secret_file_that_cannot_be_read_names_its_key(tmp_path: Path) -> None:
    error = problem({"token_file": "absent"}, base_dir=tmp_path)
    assert (error.key, error.problem) == ("section.token_file", f"file {tmp_path / 'absent'} does not exist")
    error = problem({"token_file": str(tmp_path)})  # a folder: as unreadable as a file the user may not read
    assert error.key == "section.token_file" and error.problem.startswith(f"cannot read {tmp_path}: ")


def test_dump_shows_what_the_file_would_say_with_every_secret_masked() -> None:
    options = read(
        {
            "token": SECRET,
            "tokens": ["old-one", "older-one"],
            "headers": {"Authorization": "Bearer abc"},
            "timeout": 5400,
            "inner": {"name": "n"},
        }
    )
    shown = dump(options)
    assert shown["token"] == "***" and shown["tokens"] == ["***", "***"]
    assert shown["headers"] == {"Authorization": "***"}
    assert (shown["timeout"], shown["folder"], shown["names"], shown["limit"]) == ("1h30m", "/cfg/data", [], None)
    assert shown["inner"] == {"name": "n", "size": 1}
    assert "set_by_program" not in shown
    assert sorted(secrets_in(options)) == sorted([SECRET, "old-one", "older-one", "Bearer abc"])
    assert SECRET not in repr(options)


def test_a_check_converts_and_names_the_item() -> None:
    @dataclass(frozen=True)
    class Numbers:
        values: tuple[int, ...] = setting((), raw=tuple[str, ...], check=each(int))
        extra: list[str] = field(default_factory=list)

    assert build(Numbers, {"values": ["1", "2"]}, "n", Source()).values == (1, 2)
    with pytest.raises(ConfigError) as caught:
        build(Numbers, {"values": ["1", "two"]}, "n", Source())
    assert caught.value.key == "n.values[1]"
