"""``fraudstream simulate``: a bank's transaction stream with fraud robots, into Kafka."""

from __future__ import annotations

import time

import typer

from fraudstream.cli._app import app, console, kafka_client, load_settings, stop_event
from fraudstream.simulate import PaySimSimulator, RateLimiter
from fraudstream.stream import ensure_topics, make_producer, run_simulation


@app.command()
def simulate(
    rate: float | None = typer.Option(
        None, help="Transactions per second; 0 = as fast as possible."
    ),
    duration: float | None = typer.Option(None, help="Stop after this many seconds."),
    count: int | None = typer.Option(None, help="Stop after this many transactions."),
    seed: int | None = typer.Option(None, help="Random seed (same seed, same stream)."),
    accounts: int | None = typer.Option(None, help="Number of customer accounts."),
    topic: str | None = typer.Option(None, help="Target topic [default: transactions]."),
) -> None:
    """Produce PaySim-format transactions, with fraud robots labelling their own, to Kafka."""
    settings = load_settings(
        simulate={"rate": rate, "seed": seed, "accounts": accounts}, topics={"transactions": topic}
    )
    sim = settings.simulate
    client = kafka_client(settings)
    target = settings.topics.transactions
    ensure_topics(client, [target], partitions=settings.kafka.partitions)
    simulator = PaySimSimulator(
        accounts=sim.accounts,
        seed=sim.seed,
        rate_per_s=sim.rate if sim.rate > 0 else 500.0,
        start_ms=int(time.time() * 1000),
    )
    limiter = RateLimiter(sim.rate)
    chunk = max(1, int(sim.rate // 50)) if sim.rate > 0 else 2000
    stop = stop_event()
    console.print(f"simulating to [bold]{target}[/] at {sim.rate or 'max'} tx/s (seed {sim.seed})")
    started = time.monotonic()
    sent = run_simulation(
        make_producer(client),
        target,
        simulator.next_batch,
        limiter.acquire,
        chunk=chunk,
        count=count,
        duration_s=duration,
        should_stop=stop.is_set,
    )
    elapsed = time.monotonic() - started
    console.print(f"produced {sent:,} transactions in {elapsed:.1f} s ({sent / elapsed:,.0f} tx/s)")
