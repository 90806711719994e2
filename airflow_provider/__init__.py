"""Airflow 3.3 provider for message relays: a hook, operators, sensors, triggers and a notifier.

Registered with Airflow through the ``apache_airflow_provider`` entry point
(:func:`airflow_provider.get_provider_info.get_provider_info`). Everything here is a thin adapter over
:mod:`relay_integrations`; importing this package imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
