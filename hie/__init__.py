"""hie: a regional health-information exchange platform."""

__version__ = "0.1.0"
