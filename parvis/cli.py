"""The `parvis` command: run the platform, its parts, tokens, dead letters and generated files."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDL_PATH = ROOT / "gateway" / "schema.graphql"
README_PATH = ROOT / "README.md"
MAX_TTL = 366 * 86400  # a kiosk's token lives a year; no token a person asks for lives longer


def cmd_up(args) -> int:
    from parvis.supervisor import Supervisor

    from parvis.supervisor import parse_replicas

    try:
        replicas = parse_replicas(args.replicas)
    except SystemExit as exc:
        print(f"parvis up: {exc}", file=sys.stderr)
        return 2
    return Supervisor(args.names, seed=not args.no_seed, demo_events=not args.no_demo_events,
                      replicas=replicas).run()


def cmd_urls(args) -> int:
    from core.settings import BaseSettings
    from parvis.supervisor import URLS_FILE

    path = BaseSettings.from_env().data_dir / URLS_FILE
    if not path.exists():
        print(f"parvis urls: no platform runs from {path.parent} (start it with `make run`)", file=sys.stderr)
        return 1
    print(path.read_text(encoding="utf-8"), end="")
    return 0


def cmd_stop(args) -> int:
    """Stop the platform `parvis up` runs from this data directory, as Ctrl-C does, and wait for it."""
    import os
    import signal
    import time

    from core.settings import BaseSettings
    from parvis.supervisor import PID_FILE

    path = BaseSettings.from_env().data_dir / PID_FILE
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        print(f"parvis stop: no platform runs from {path.parent}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            print("stopped")
            return 0
        time.sleep(0.1)
    print(f"parvis stop: {pid} still runs after {args.timeout:.0f} s", file=sys.stderr)
    return 1


def cmd_service(args) -> int:
    from parvis import runner  # monkey-patches eventlet first thing

    runner.run(args.name)
    return 0


def cmd_gateway(args) -> int:
    from gateway.app import main

    main()
    return 0


def cmd_token(args) -> int:
    from contracts.errors import BadInput
    from core.settings import BaseSettings, SettingsError
    from gateway import auth

    try:
        if args.ttl is not None and not 0 < args.ttl <= MAX_TTL:
            raise BadInput(f"durée de vie (--ttl) : de 1 à {MAX_TTL} secondes ({MAX_TTL // 86400} jours)", "ttl")
        settings = BaseSettings.from_env(generate_secret=False)
        if args.org:
            _check_organization(settings, args.org)
        token = auth.issue(settings.secret, args.role, subject=args.subject, org=args.org, kiosk=args.kiosk,
                           ttl=args.ttl, regies=args.regie or None)
    except BadInput as exc:
        print(f"parvis token: {exc.message}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"parvis token: {exc}", file=sys.stderr)
        return 2
    print(token.value)
    return 0


def _check_organization(settings, org: str) -> None:
    """An organiser's token names an organisation the agenda knows (asked to the running platform)."""
    import asyncio

    from contracts.errors import BadInput
    from gateway.rpc import RpcClient

    async def organizations():
        rpc = RpcClient(settings.amqp_url, secret=settings.secret)
        try:
            return await rpc.call("agenda", "list_organizations", timeout=5.0,
                                  context={"caller": {"role": "operator", "subject": "parvis-cli"}})
        finally:
            await rpc.close()

    try:
        known = {o["id"] for o in asyncio.run(organizations())}
    except Exception as exc:  # noqa: BLE001 - said to the person, who can start the platform
        raise BadInput(f"impossible de vérifier l'organisation {org!r} : la plateforme ne répond pas ({exc}). "
                       "Lancez-la (make run).", "org") from None
    if org not in known:
        raise BadInput(f"organisation inconnue : {org!r} (voir la requête GraphQL `organizations`)", "org")


def cmd_revoke(args) -> int:
    import asyncio
    from datetime import datetime, timezone

    from core.settings import BaseSettings
    from gateway import auth
    from gateway.rpc import RpcClient

    settings = BaseSettings.from_env(generate_secret=False)
    claims = auth.claims_unverified(args.token)

    async def go():
        rpc = RpcClient(settings.amqp_url, secret=settings.secret)
        try:
            return await rpc.call("notification", "revoke_token", context={"caller": {"role": "operator", "subject": "parvis-cli"}},
                                  token_id=claims["jti"], reason=args.reason,
                                  expires_at=datetime.fromtimestamp(claims["exp"], timezone.utc).isoformat())
        finally:
            await rpc.close()

    print(json.dumps(asyncio.run(go())))
    return 0


def cmd_dlq(args) -> int:
    from core.settings import BaseSettings
    from core import deadletters as dlq

    url = BaseSettings.from_env().amqp_url
    if args.action == "list":
        rows = dlq.list_dead_letters(url)
        if args.json:
            print(json.dumps(rows, indent=1))
        elif not rows:
            print("no dead letters")
        else:
            for r in rows:
                print(f"{r['id']}\t{r['type']}\tattempts={r['attempts']}\t{r['dead_lettered_at']}\n    {r['error']}")
        return 0
    if not args.all and not args.ids:
        print("parvis dlq replay: name message ids (from `parvis dlq list`) or --all", file=sys.stderr)
        return 2
    rows = dlq.replay(url, None if args.all else set(args.ids))
    print(f"replayed {len(rows)} message(s)")
    for r in rows:
        print(f"  {r['id']} -> {r['queue']}")
    return 0


def cmd_seed(args) -> int:
    import asyncio

    from core.settings import BaseSettings
    from gateway.rpc import RpcClient
    from parvis.seed import seed, seed_demo_events

    async def go():
        settings = BaseSettings.from_env(generate_secret=False)
        rpc = RpcClient(settings.amqp_url, secret=settings.secret)
        try:
            return {**await seed(rpc), **await seed_demo_events(rpc)}
        finally:
            await rpc.close()

    print(json.dumps(asyncio.run(go())))
    return 0


def generated_files() -> dict[Path, str]:
    """What `parvis schema` writes: the GraphQL SDL, the AsyncAPI document and the README's settings table."""
    from contracts import asyncapi
    from gateway.schema import sdl
    from parvis.settings_table import with_table

    return {SDL_PATH: sdl(), asyncapi.PATH: asyncapi.render(),
            README_PATH: with_table(README_PATH.read_text(encoding="utf-8"))}


def cmd_schema(args) -> int:
    stale = []
    for path, text in generated_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale: " + ", ".join(str(p.relative_to(ROOT)) for p in stale) + " (run `parvis schema`)", file=sys.stderr)
        return 1
    for p in stale:
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parvis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="run the platform (database, services, gateway) under one supervisor")
    p.add_argument("names", nargs="*", help="only these processes (agenda consultation satisfaction payment_link "
                                            "notification gateway); all by default")
    p.add_argument("--no-seed", action="store_true", help="do not load the demo data")
    p.add_argument("--replicas", action="append", metavar="N|SERVICE=N",
                   help="processes of each service (N), or of one (SERVICE=N); repeatable, or comma-separated")
    p.add_argument("--no-demo-events", action="store_true",
                   help="load the reference data but no demo events (tests that need an empty agenda)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("urls", help="print again the URLs and demo tokens of the platform `parvis up` runs")
    p.set_defaults(func=cmd_urls)

    p = sub.add_parser("stop", help="stop the platform `parvis up` runs (as Ctrl-C does), and wait for it")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("service", help="run one nameko service in this process")
    p.add_argument("name")
    p.set_defaults(func=cmd_service)

    p = sub.add_parser("gateway", help="run the GraphQL gateway (uvicorn) in this process")
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("token", help="print a signed bearer token (only the token, on stdout)")
    p.add_argument("role", choices=["public", "citizen", "organizer", "agent", "kiosk", "operator", "service"])
    p.add_argument("--subject")
    p.add_argument("--org", help="organisation id, for an organizer")
    p.add_argument("--kiosk", help="kiosk id, for a kiosk")
    p.add_argument("--regie", action="append", help="for a service (billing software): a régie it may bill for "
                                                    "(repeat for several)")
    p.add_argument("--ttl", type=int, help="lifetime in seconds")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("revoke", help="revoke a token until it expires")
    p.add_argument("token")
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("dlq", help="list or replay the dead-letter queue")
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("ids", nargs="*", help="with replay: ids from `parvis dlq list` (or event ids)")
    p.add_argument("--all", action="store_true", help="with replay: every dead letter")
    p.add_argument("--json", action="store_true", help="with list: JSON output")
    p.set_defaults(func=cmd_dlq)

    p = sub.add_parser("seed", help="load the demo data into running services (idempotent)")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("schema", help="write gateway/schema.graphql, contracts/asyncapi.yaml and the README's settings "
                                      "table (--check: fail if stale)")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
