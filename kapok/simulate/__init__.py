"""`kapok simulate <scenario>`: stories played through the services' public HTTP APIs."""

from __future__ import annotations

from pathlib import Path

SCENARIOS = ("guangzhou-2020",)


def add_arguments(parser: object, services: tuple[str, ...] | list[str]) -> None:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    parser.add_argument("--seed", type=int, default=2020, help="same seed, same story")
    parser.add_argument(
        "--scale", default="1", help="each figure becomes round-half-up(figure × scale)"
    )
    parser.add_argument(
        "--speed", type=float, default=0.0, help="simulated days per second (0: flat out)"
    )
    parser.add_argument(
        "--retry-for",
        type=float,
        default=None,
        metavar="S",
        help="retry a request not answered, or answered 502/503/504, for S seconds with the "
        "same Idempotency-Key, with a backoff (default: $KAPOK_SIMULATE_RETRY_S, else 120: "
        "longer than `kapok up` takes to restart a service or nats-server, or a short "
        "database outage)",
    )


def add_url_arguments(parser: object, services: tuple[str, ...] | list[str]) -> None:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    parser.add_argument("--base-url", default="http://127.0.0.1", help="where the services listen")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the `kapok up`'s, whose administrator token signs in (default: $KAPOK_DATA_DIR; "
        "$KAPOK_TOKEN overrides)",
    )
    for name in services:
        parser.add_argument(f"--{name}-port", type=int, default=None, metavar="N")


def urls(base: str, ports: dict[str, int]) -> dict[str, str]:
    return {name: f"{base.rstrip('/')}:{port}" for name, port in ports.items()}


def run(
    scenario: str,
    urls_: dict[str, str],
    seed: int,
    scale: str,
    speed: float,
    retry_for: float | None = None,
) -> int:
    import asyncio
    from decimal import Decimal, InvalidOperation

    from kapok.simulate.guangzhou2020 import simulate

    try:
        factor = Decimal(scale)
    except InvalidOperation:
        print(f"kapok simulate: --scale {scale!r} is not a number")
        return 2
    try:
        return asyncio.run(simulate(urls_, seed, factor, speed, True, retry_for))
    except ValueError as error:
        print(f"kapok simulate: {error}")
        return 2


def demo(args: object) -> object:
    """`kapok demo`: what `kapok up` calls once every service answers."""
    from decimal import Decimal

    from kapok.simulate.guangzhou2020 import simulate

    async def play(ports: dict[str, int]) -> None:
        await simulate(
            urls("http://127.0.0.1", ports),
            int(getattr(args, "seed", 2020)),
            Decimal(str(getattr(args, "scale", "0.05"))),
            float(getattr(args, "speed", 1.0)),
            show_progress=True,
            retry_for=getattr(args, "retry_for", None),
        )
        print("kapok demo: the scenario is played; the dashboard stays up until Ctrl-C")

    return play
