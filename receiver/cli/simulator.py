"""`altinn-receiver simulator`: the Altinn simulator as a command."""

from __future__ import annotations

import logging

import click
import uvicorn

from altinn_sim.app import create_app
from altinn_sim.runner import GRACEFUL_SHUTDOWN_SECONDS
from altinn_sim.settings import load_sim_settings
from receiver.cli.common import fail_config
from receiver.config import ConfigError
from receiver.observability.logs import setup_logging

log = logging.getLogger("altinn_sim")


@click.command("simulator")
@click.option("--port", type=int, default=5100, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The simulator's sim.toml: time_scale, require_https, token lifetimes, seed size, faults "
                   "(see docs/simulator.md). Default: built-in settings.")  # fmt: skip
def simulator_command(port: int, host: str, config_path: str | None) -> None:
    """Run the Altinn simulator: Maskinporten, token exchange, Events and Correspondence on one port."""
    try:
        settings = load_sim_settings(config_path)
    except ConfigError as error:
        fail_config(error)
    setup_logging()
    base_url = f"http://{host}:{port}"
    app = create_app(settings, base_url=base_url)
    log.info(
        "simulator listening",
        extra={"url": base_url, "maskinporten_issuer": base_url + "/", "admin": base_url + "/_sim/state",
               "time_scale": settings.time_scale},
    )  # fmt: skip
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    # Not uvicorn.run, which swallows the KeyboardInterrupt uvicorn raises again after a graceful Ctrl-C: the command
    # line turns it into exit status 130, as for every command.
    uvicorn.Server(config).run()
