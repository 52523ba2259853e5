"""`python -m billing_sandbox --scenario FILE` serves both APIs; `python -m billing_sandbox generate ...`
writes a scenario (see billing_sandbox.generate)."""

from __future__ import annotations

import argparse
import logging
import sys

from billing_sandbox.scenario import ScenarioError, load_scenario

EXIT_BAD_SCENARIO = 2


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m billing_sandbox",
        description="Serve the local Huntress and ConnectWise APIs for a scenario until SIGINT/SIGTERM. "
        "Prints one JSON line with both URLs on stdout once they accept connections. "
        "Subcommand: `generate` writes a scenario (python -m billing_sandbox generate --help).",
    )
    parser.add_argument("--scenario", required=True, help="scenario JSON file (validated on load)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    parser.add_argument("--huntress-port", type=int, default=0, help="Huntress API port; 0 picks a free one")
    parser.add_argument(
        "--connectwise-port", type=int, default=0, help="ConnectWise API port; 0 picks a free one"
    )
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr (slower)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["generate"]:
        from billing_sandbox import generate

        return generate.main(argv[1:]) or 0
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    args = _serve_parser().parse_args(argv)
    # stdout carries only the JSON line of URLs; every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"billing_sandbox: {exc}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    from billing_sandbox import server

    return server.run(scenario, args.host, args.huntress_port, args.connectwise_port, args.access_log)


if __name__ == "__main__":
    sys.exit(main())
