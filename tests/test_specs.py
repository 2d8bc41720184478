"""`NAME:key=value,...` specs: parsing, formatting, option building and every error message."""

from __future__ import annotations

import dataclasses

import pytest

from metarlkit.specs import SpecError, build_options, closest, format_spec, options_of, parse_spec


@pytest.mark.parametrize(
    "spec, name, options",
    [
        ("bernoulli-bandit", "bernoulli-bandit", {}),
        ("bernoulli-bandit:arms=3", "bernoulli-bandit", {"arms": "3"}),
        ("ucb1:c=0.5", "ucb1", {"c": "0.5"}),
        (" restless-bandit : volatility = high , pulls=20 ", "restless-bandit", {"volatility": "high", "pulls": "20"}),
        ("name:", "name", {}),
        ("a:k=x=y", "a", {"k": "x=y"}),  # only the first '=' separates key and value
    ],
)
def test_parse_spec(spec, name, options):
    assert parse_spec(spec) == (name, options)


@pytest.mark.parametrize(
    "spec",
    ["bernoulli-bandit", "bernoulli-bandit:arms=3,pulls=2", "tabular-mdp:actions=5,states=10,steps=10", "ts"],
)
def test_round_trip(spec):
    name, options = parse_spec(spec)
    assert format_spec(name, options) == spec
    assert parse_spec(format_spec(name, options)) == (name, options)


def test_format_spec_keeps_option_order_and_prints_values():
    assert format_spec("x", {}) == "x"
    assert format_spec("x", {"b": 2, "a": 0.5, "c": "low"}) == "x:b=2,a=0.5,c=low"
    assert parse_spec(format_spec("x", {"b": 2, "a": True})) == ("x", {"b": "2", "a": "true"})  # as typed


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty spec: give NAME or NAME:key=value,key=value"),
        ("   ", "empty spec: give NAME or NAME:key=value,key=value"),
        (None, "empty spec"),
        ("a:b", "bad option 'b' in 'a:b': write options as key=value separated by commas"),
        ("a:k=", "bad option 'k=' in 'a:k=': write options as key=value separated by commas"),
        ("a:=1", "bad option '=1'"),
        ("a:k=1,", "bad option '' in 'a:k=1,'"),
        ("a:k=1,,j=2", "bad option ''"),
        ("a:k=1,k=2", "option 'k' given twice in 'a:k=1,k=2'"),
        ("a:k=1, k =2", "option 'k' given twice"),
    ],
)
def test_parse_errors(spec, message):
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)  # callers may catch ValueError


@dataclasses.dataclass(frozen=True)
class Options:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    mode: str = "a"

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")


def test_build_options_converts_strings():
    built = build_options(Options, {"count": "3", "rate": "2", "flag": "yes", "mode": "b"}, "thing")
    assert built == Options(count=3, rate=2.0, flag=True, mode="b")
    assert isinstance(built.rate, float)
    assert build_options(Options, {"count": 4, "flag": False}, "thing") == Options(count=4)
    assert options_of(built) == {"count": 3, "rate": 2.0, "flag": True, "mode": "b"}
    for raw, value in (("1", True), ("true", True), ("On", True), ("0", False), ("no", False), ("off", False)):
        assert build_options(Options, {"flag": raw}, "thing").flag is value


@pytest.mark.parametrize(
    "options, message",
    [
        ({"size": "3"}, "thing has no option 'size'; valid options: count, flag, mode, rate"),
        ({"count": "x"}, "thing option 'count' must be int, got 'x'"),
        ({"count": "2.5"}, "thing option 'count' must be int, got '2.5'"),
        ({"rate": "fast"}, "thing option 'rate' must be float, got 'fast'"),
        ({"flag": "maybe"}, "thing option 'flag' must be bool, got 'maybe'"),
        ({"count": "0"}, "thing: count must be >= 1, got 0"),
    ],
)
def test_build_options_errors(options, message):
    with pytest.raises(SpecError) as err:
        build_options(Options, options, "thing")
    assert str(err.value) == message


def test_closest():
    assert closest("bernouli-bandit", ["bernoulli-bandit", "gaussian-bandit"]) == "; did you mean 'bernoulli-bandit'?"
    assert closest("zzz", ["bernoulli-bandit"]) == ""
