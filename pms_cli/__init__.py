"""pms — sync properties, bookings and guests from vacation-rental PMSs into a database.

The library is usable without the CLI::

    from pms_cli.config import load_settings
    from pms_cli.stores import open_store
    from pms_cli.sync.engine import SyncEngine
"""

__version__ = "0.1.0"
