"""The config loader: file lookup precedence and errors that name file, key and expectation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest

from sidecar.config import (
    DURATION,
    ConfigFileError,
    ConfigSources,
    ConfigValueError,
    ConfigValueErrors,
    YamlError,
    keys_in_any_case,
    parse_duration,
    parse_yaml,
)


@dataclass(frozen=True)
class Inner:
    cert_file: str | None = None


@dataclass(frozen=True)
class Sample:
    port: int = 1
    interval: Annotated[float, DURATION] = 5.0
    names: list[str] = field(default_factory=list)
    tls: Inner | None = None
    group_id: str = field(default="g", metadata={"key": "group_id"})


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_flag_beats_env_beats_config_dir(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    write(tmp_path / "dir" / "sample.conf", "port: 1\n")
    env_file = write(tmp_path / "env.conf", "port: 2\n")
    flag_file = write(tmp_path / "flag.conf", "port: 3\n")
    env = {"SAMPLE_CONFIG": str(env_file)}

    assert ConfigSources.from_env(tmp_path / "dir", {}, {}).load("sample", Sample).port == 1
    assert ConfigSources.from_env(tmp_path / "dir", {}, env).load("sample", Sample).port == 2
    both = ConfigSources.from_env(tmp_path / "dir", {"sample": flag_file}, env)
    assert both.load("sample", Sample).port == 3


def test_config_dir_from_env_and_dashes_become_underscores(tmp_path: Path) -> None:
    write(tmp_path / "process-manager.conf", "port: 7\n")
    sources = ConfigSources.from_env(None, {}, {"CONFIG_DIR": str(tmp_path)})
    assert sources.load("process-manager", Sample).port == 7
    other = write(tmp_path / "other.conf", "port: 8\n")
    sources = ConfigSources.from_env(None, {}, {"PROCESS_MANAGER_CONFIG": str(other)})
    assert sources.load("process-manager", Sample).port == 8


def test_missing_file_means_defaults_or_disabled(tmp_path: Path) -> None:
    sources = ConfigSources.from_env(tmp_path, {}, {})
    assert sources.load("sample", Sample) == Sample()
    assert sources.load_optional("sample", Sample) is None


def test_explicitly_named_file_must_exist(tmp_path: Path) -> None:
    sources = ConfigSources.from_env(None, {"sample": tmp_path / "nope.conf"}, {})
    with pytest.raises(ConfigFileError, match=r"nope\.conf: no such file"):
        sources.load("sample", Sample)


def test_empty_file_gives_defaults_but_enables_optional_plugin(tmp_path: Path) -> None:
    write(tmp_path / "sample.conf", "# nothing\n")
    sources = ConfigSources.from_env(tmp_path, {}, {})
    assert sources.load_optional("sample", Sample) == Sample()


def test_values_of_every_kind(tmp_path: Path) -> None:
    write(tmp_path / "sample.conf",
          "port: 9\ninterval: 1m30s\nnames: [a, b]\ntls: {cert-file: /c.pem}\ngroup_id: x\n")
    loaded = ConfigSources.from_env(tmp_path, {}, {}).load("sample", Sample)
    assert loaded == Sample(9, 90.0, ["a", "b"], Inner("/c.pem"), "x")


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("prot: 9\n", "prot", "unknown key (did you mean 'port'?)"),
    ("port: nine\n", "port", "expected an integer, got 'nine' (str)"),
    ("port: true\n", "port", "expected an integer"),
    ("interval: soon\n", "interval", "expected a duration such as 500ms"),
    ("names: a\n", "names", "expected a list"),
    ("names: [1]\n", "names[0]", "expected a string"),
    ("tls: {cert: x}\n", "tls.cert", "unknown key"),
])
def test_bad_values_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path / "sample.conf", text)
    with pytest.raises(ConfigValueError) as info:
        ConfigSources.from_env(tmp_path, {}, {}).load("sample", Sample)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ")
    assert expected in message


@keys_in_any_case
@dataclass(frozen=True)
class GoStyle:
    """A file shared with cn-infra: keys in any case, as its decoder reads them."""

    default_level: str = "info"
    group_id: str = field(default="g", metadata={"key": "group_id"})
    inner: Inner | None = None


@pytest.mark.parametrize("text", [
    "default-level: debug\ngroup_id: x\n",
    "Default-Level: debug\nGROUP_ID: x\n",
    "DefaultLevel: debug\nGroupId: x\n",
    "default_level: debug\ngroup-id: x\n",
])
def test_keys_in_any_case_where_a_file_is_shared_with_cn_infra(tmp_path: Path,
                                                              text: str) -> None:
    write(tmp_path / "go.conf", text)
    loaded = ConfigSources.from_env(tmp_path, {}, {}).load("go", GoStyle)
    assert (loaded.default_level, loaded.group_id) == ("debug", "x")


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("DefaultLevle: debug\n", "DefaultLevle", "unknown key (did you mean 'default-level'?)"),
    ("Default-Level: a\ndefaultlevel: b\n", "default-level",
     "set twice, as 'Default-Level' and as 'defaultlevel'"),
    # Only the marked class matches in any case; a nested one keeps its own rule.
    ("inner: {Cert-File: x}\n", "inner.Cert-File", "unknown key (did you mean 'cert-file'?)"),
])
def test_keys_in_any_case_still_refuse_unknown_and_doubled_keys(
        tmp_path: Path, text: str, key: str, expected: str) -> None:
    path = write(tmp_path / "go.conf", text)
    with pytest.raises(ConfigValueError) as info:
        ConfigSources.from_env(tmp_path, {}, {}).load("go", GoStyle)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ")
    assert expected in message


def test_keys_are_exact_unless_the_config_asks_otherwise(tmp_path: Path) -> None:
    write(tmp_path / "sample.conf", "Port: 9\n")
    with pytest.raises(ConfigValueError, match="Port: unknown key"):
        ConfigSources.from_env(tmp_path, {}, {}).load("sample", Sample)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    write(tmp_path / "sample.conf", "port: 1\n  bad: [\n")
    with pytest.raises(ConfigFileError, match=r"sample\.conf: invalid YAML: line \d+"):
        ConfigSources.from_env(tmp_path, {}, {}).load("sample", Sample)


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    # PyYAML alone keeps the second value silently; the first one would be lost.
    write(tmp_path / "sample.conf", "port: 1\nname: a\nport: 2\n")
    with pytest.raises(ConfigFileError,
                       match=r"sample\.conf: invalid YAML: line 3, column 1: "
                             r"duplicate key 'port' \(first on line 1\)"):
        ConfigSources.from_env(tmp_path, {}, {}).load("sample", Sample)


def test_nested_duplicates_are_errors_and_merge_keys_still_work() -> None:
    with pytest.raises(YamlError, match="line 4, column 3: duplicate key 'x'"):
        parse_yaml("a:\n  x: 1\n  y: 2\n  x: 3\n")
    # An explicit key overriding one brought in by a merge is YAML's intent, not a slip.
    assert parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n")["c"] == {"x": 3, "y": 2}
    assert parse_yaml("a: [{x: 1}, {x: 2}]\n") == {"a": [{"x": 1}, {"x": 2}]}


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    write(tmp_path / "sample.conf", "- 1\n- 2\n")
    with pytest.raises(ConfigValueError, match="expected a mapping of keys"):
        ConfigSources.from_env(tmp_path, {}, {}).load("sample", Sample)


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("5s", 5.0), ("15m", 900.0), ("1h30m", 5400.0), ("2.5", 2.5), (3, 3.0)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 parsecs", "-1s", "s5", "5s3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_every_mistake_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path / "sample.conf",
          "prot: 1\ninterval: often\nnames: [a, 2, b, 3]\ntls: {cert-fil: x}\n")
    with pytest.raises(ConfigValueErrors) as caught:
        ConfigSources.from_env(tmp_path, {}, {}).load("sample", Sample)
    source = str(tmp_path / "sample.conf")
    assert caught.value.messages == [
        f"{source}: prot: unknown key (did you mean 'port'?); valid keys are: "
        "group_id, interval, names, port, tls",
        f"{source}: interval: expected a duration such as 500ms, 5s, 15m or 1h30m, "
        "got 'often'",
        f"{source}: names[1]: expected a string, got 2 (int)",
        f"{source}: names[3]: expected a string, got 3 (int)",
        f"{source}: tls.cert-fil: unknown key (did you mean 'cert-file'?); valid keys are: "
        "cert-file",
    ]
    # Callers that catch one ConfigValueError still get the first problem's fields.
    assert isinstance(caught.value, ConfigValueError)
    assert (caught.value.key, caught.value.source) == ("prot", source)


@pytest.mark.parametrize(("text", "expected"), [
    ("endpoint: [1\n", "line 1, column 11: a list opened with '[' here is not closed with ']'"),
    ("endpoint: a: b\n", "line 1, column 12: an unexpected ':' (a value that contains ': ' "
                         "must be in quotes"),
    ("tls:\n\tca-file: x\n", "line 2, column 1: a tab character: YAML indents with spaces"),
    ("tls:\n  ca-file: x\n cert-file: y\n",
     "line 3, column 2: this line is not indented like the lines before it"),
    ("a: \"abc\nb: 2\n", "line 1, column 4: a quoted value that starts here has no closing"),
    ("a: 1\nb\nc: 2\n", "line 2, column 1: a line that is neither 'key: value' nor a list item"),
    ("a: @x\n", "line 1, column 4: a value cannot start with '@': put the value in quotes"),
    ("a: 1\n- b\n", "line 2, column 1: a list item where a key was expected"),
    ("a: 1\n---\nb: 2\n", "line 2, column 1: a second document after '---'"),
    ("endpoint: [\n", "line 2, column 1: the file ends where a value was expected"),
])
def test_yaml_errors_say_what_is_wrong_in_plain_words(text: str, expected: str) -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml(text)
    assert str(caught.value).startswith(expected)
    assert "(YAML: " in str(caught.value)  # the parser's words stay, for searching
