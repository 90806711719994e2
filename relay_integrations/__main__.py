from relay_integrations.cli import run

run()
