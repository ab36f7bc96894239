"""`aisre bench` without a cluster: the command line."""

from __future__ import annotations

from pathlib import Path

from aisre.cli import build_parser


def test_the_bench_command_line() -> None:
    args = build_parser().parse_args(
        ["bench", "--scenarios", "s", "--json", "o.json", "--tag", "a", "--tag", "b", "--timeout", "5",
         "--external-operator", "--keep-namespaces", "--kubeconfig", "k"]
    )
    assert args.scenarios == Path("s") and args.json == Path("o.json") and args.tag == ["a", "b"]
    assert args.timeout == 5.0 and args.external_operator and args.keep_namespaces and args.kubeconfig == Path("k")
    assert args.mode == "detect"  # the default once detection exists (SCENARIOS.md)
    defaults = build_parser().parse_args(["bench", "--scenarios", "s", "--json", "o.json", "--mode", "investigate"])
    assert defaults.mode == "investigate" and defaults.timeout == 60.0 and defaults.tag is None and not defaults.external_operator


